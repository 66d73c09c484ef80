"""Evals: generate answers for checkpoints, validate them with Asar, score, rank.

`eval_run` writes the prompt set into RUN_DIR/evals/<set>/prompts.jsonl, starts the
generator program for the checkpoints whose answers are missing (a child process: torch never
enters the app), and scores each checkpoint as soon as its answers file lands: every answer
through `asm_validate`, then the scores of `core.evals`, stored in SQLite in one transaction
per checkpoint. A checkpoint already generated and scored is skipped, so an interrupted eval
continues where it stopped and a second run of the same eval does nothing. A remote run's
answers are generated on its box (`services.box_evals`); the ranking is `core.leaderboard`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Callable

from ..backends import export_runner
from ..backends.generate_runner import GENERATOR_STACK, GenerateRequest, run_generate
from ..backends.hosts import BoxEval, SshHost
from ..core import atomic, evals, jsonl, runs
from ..demo import run as demo_run
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.leaderboard import DEFAULT_SORT, LeaderboardRow, export_mark, mark_best, rank
from ..core.mix import EVAL_SOURCES
from ..core.store import Store
from ..core.train_config import load_run_config
from .asm import AsmService
from .box_evals import generate_on_box
from .datasets import DatasetService
from .runs import RunService
from .views import LeaderboardView, PromptSetRow, SampleRow, View

# (checkpoint, answers done, answers total); checkpoint "" with done == total == 0: a phase message
EvalProgress = Callable[[str, int, int], object]  # what it returns is ignored
Say = Callable[[str], None]  # a line about what happens (starting on the box, waiting for another eval)
INSTALL_TRAIN = "pip install -e '.[train]'"


def _quiet(_: str) -> None:
    pass


def generator_stack_missing() -> str | None:
    """Why answers cannot be generated on this machine (None: they can). Asked before a
    generator starts, so a machine without torch says what to install instead of failing in
    the child process after the fact."""
    missing = [name for name in GENERATOR_STACK if find_spec(name) is None]
    if not missing:
        return None
    return (f"generating eval answers needs the [train] extra ({', '.join(missing)} not installed): "
            f"{INSTALL_TRAIN}")


@dataclass
class CheckpointResult(View):
    """One checkpoint of an eval, updated as its answers land (so not frozen); `summary` once scored."""

    checkpoint: str
    step: int | None
    state: str = "pending"  # generated | reused | scored | failed
    message: str = ""
    summary: evals.Summary | None = None


@dataclass
class EvalReport(View):
    """What `eval run` did: the prompt set, the bad prompt lines skipped, each checkpoint's result."""

    run: str
    run_dir: str
    prompt_set: str
    prompts: int
    problems: list[str] = field(default_factory=list)  # skipped prompt lines, `FILE:LINE: ...`
    checkpoints: list[CheckpointResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckpointResult]:
        return [c for c in self.checkpoints if c.state == "failed"]


@dataclass
class _Sink:
    """The generator's events, turned into results: each checkpoint scored as its answers land."""

    service: EvalService
    run_dir: Path
    prompt_set: str
    by_name: dict[str, CheckpointResult]
    progress: EvalProgress | None
    say: Say = _quiet
    pid: int | None = None  # read only this generator's events (others may share the events file)
    fatal: list[str] = field(default_factory=list)
    finished: bool = False

    def line(self, text: str) -> None:
        event = jsonl.event(text)
        if event is None:
            return
        if event.get("event") == "done" and event.get("pid") != self.pid and event.get("checkpoint") not in self.by_name:
            try:  # another generator's (the one training started): stored for the leaderboard as well
                self.service.ingest(self.run_dir, self.prompt_set, str(event["checkpoint"]))
            except ZeldaError:
                pass
        if self.pid is None or event.get("pid") == self.pid:
            self.event(event)

    def event(self, event: dict) -> None:
        name, kind = event.get("checkpoint"), event.get("event")
        if kind == "progress" and self.progress is not None:
            self.progress(str(name), int(event.get("done", 0)), int(event.get("total", 0)))
        elif kind in ("done", "skipped") and name in self.by_name:
            self.service._score(self.run_dir, self.prompt_set, self.by_name[name],
                                "generated" if kind == "done" else "reused")
        elif kind == "error":
            if name in self.by_name:
                self.by_name[name].state, self.by_name[name].message = "failed", str(event.get("message", ""))
            elif name is None:
                self.fatal.append(str(event.get("message", "")))
        elif kind in ("waiting", "queued"):
            self.say(str(event.get("message", kind)))
        elif kind == "finished":
            self.finished = True

    def fail_pending(self, names: list[str], message: str) -> None:
        for name in names:
            if self.by_name[name].state == "pending":
                self.by_name[name].state, self.by_name[name].message = "failed", message


@dataclass
class EvalService:
    """Evals of a run's checkpoints, their scores in SQLite, and the leaderboard over them."""

    config: Config
    store: Store
    asm: AsmService
    datasets: DatasetService
    runs: RunService

    @property
    def default_prompts(self) -> Path:
        """The held-out prompt set shipped with zelda-tui (built from the demo generator)."""
        return evals.SHIPPED_PROMPTS

    # --- running an eval -----------------------------------------------------------------
    def run(self, run: str, checkpoint: str = "all", prompts: Path | None = None, options: evals.GenerateOptions | None = None,
            limit: int | None = None, progress: EvalProgress | None = None,
            cancel: threading.Event | None = None, say: Say | None = None) -> EvalReport:
        """Generate, validate, score and store; a failing checkpoint never stops the others.

        Answers are generated where the run's model is: here for a local run, on the run's box
        for a remote one (see `box_evals.generate_on_box`); Asar validation and scoring always run here.
        """
        opts = options or evals.GenerateOptions()
        if opts.samples < 0 or opts.max_new_tokens < 1 or opts.batch_size < 1:
            raise ZeldaError("eval: --samples must be >= 0, --max-new-tokens and --batch-size >= 1", exit_code=2)
        run_dir = self.runs.dir(run)
        cfg = load_run_config(run_dir)
        pf = evals.parse_prompts(Path(prompts) if prompts else self.default_prompts)
        chosen = pf.prompts[:limit] if limit else pf.prompts
        prompt_text = evals.prompts_jsonl(chosen)
        prompts_sha = evals.sha256_text(prompt_text)
        host = self.runs.host(run_dir.name)
        box = BoxEval(host, run_dir) if isinstance(host, SshHost) else None
        available = box.checkpoints() if box is not None else evals.eval_checkpoints(run_dir)
        names = self._resolve_checkpoints(run_dir, checkpoint, available, host.name if box else None)
        report = EvalReport(run_dir.name, str(run_dir), pf.name, len(chosen), list(pf.problems),
                            [CheckpointResult(name, step) for name, step in names])
        edir = evals.eval_dir(run_dir, pf.name)
        prompts_file = edir / evals.PROMPTS_FILE
        if not prompts_file.is_file() or prompts_file.read_text(encoding="utf-8") != prompt_text:
            atomic.write_text(prompts_file, prompt_text)
        sink = _Sink(self, run_dir, pf.name, {c.checkpoint: c for c in report.checkpoints}, progress, say or _quiet)
        if box is not None:
            generate_on_box(box, sink, [n for n, _ in names], opts, cancel, say or _quiet)
        else:
            done: list[str] = []
            todo: list[str] = []
            for name, _ in names:
                request = evals.generation_request(cfg.model.base, evals.checkpoint_dir(run_dir, name), prompts_sha,
                                                   opts.samples, opts.max_new_tokens, opts.seed, opts.temperature,
                                                   opts.top_p)
                complete = evals.answers_complete(evals.answers_path(run_dir, pf.name, name), request)
                (done if complete else todo).append(name)
            if todo:
                self._check_can_generate(run_dir)
            for name in done:
                self._score(run_dir, pf.name, sink.by_name[name], "reused")
            if todo:
                self._generate(sink, todo, opts, cancel)
        for result in report.checkpoints:
            if result.state == "pending":
                result.state = "failed"
                result.message = result.message or ("cancelled" if cancel is not None and cancel.is_set()
                                                    else "the generator ended without answers for it")
        return report

    def stack_missing(self) -> str | None:
        """What to install before an eval can generate answers here (None: nothing)."""
        return generator_stack_missing()

    def _check_can_generate(self, run_dir: Path) -> None:
        if demo_run.is_demo_run(run_dir):
            raise ZeldaError(f"{run_dir.name} is demo data (no model was trained): only its shipped answers "
                             f"(demo prompt set, default options) can be scored; train a run to evaluate others")
        missing = generator_stack_missing()
        if missing:
            raise ZeldaError(missing)

    def _generate(self, sink: _Sink, todo: list[str], opts: evals.GenerateOptions,
                  cancel: threading.Event | None) -> None:
        request = GenerateRequest(sink.run_dir, sink.prompt_set, todo, opts)
        log_path = evals.eval_dir(sink.run_dir, sink.prompt_set) / evals.GENERATE_LOG
        code = run_generate(request, log_path, sink.event, cancel)
        if sink.fatal or code not in (0, 1):
            sink.fail_pending(todo, sink.fatal[0] if sink.fatal else f"the generator exited with code {code} (see {log_path})")

    def _score(self, run_dir: Path, prompt_set: str, result: CheckpointResult, how: str) -> None:
        try:
            result.summary = self.ingest(run_dir, prompt_set, result.checkpoint)
            result.state = how
        except ZeldaError as exc:
            result.state, result.message = "failed", str(exc)

    def ingest(self, run_dir: Path, prompt_set: str, checkpoint: str) -> evals.Summary:
        """Validate and score one answers file and store it (skipped when already stored)."""
        run_dir = Path(run_dir)
        path = evals.answers_path(run_dir, prompt_set, checkpoint)
        header, answers = evals.read_answers(path)
        stored = self.store.eval_summary(run_dir.name, checkpoint, prompt_set)
        if stored is not None and stored["header"] == header:
            return evals.Summary.from_dict(stored["summary"])
        prompts = {p.idx: p for p in evals.read_eval_prompts(evals.eval_dir(run_dir, prompt_set) / evals.PROMPTS_FILE)}
        if header.get("prompts_sha256") != evals.sha256_text(evals.prompts_jsonl(prompts.values())):
            raise ZeldaError(f"{path}: answers were generated for another version of {prompt_set}; run the eval again")
        missing = [a["prompt_idx"] for a in answers if a.get("prompt_idx") not in prompts]
        if missing:
            raise ZeldaError(f"{path}: answers for prompts {missing[:3]} that {prompt_set} does not have")
        from ..asm.code import extract_code
        from ..asm.normalise import codes_match

        verdicts = self.asm.validate([a["answer"] for a in answers])
        rows = []
        for answer, verdict in zip(answers, verdicts):
            prompt = prompts[answer["prompt_idx"]]
            code = extract_code(answer["answer"])  # the snippet the verdict's line numbers refer to
            match = None
            if prompt.reference is not None:
                match = codes_match(code, extract_code(prompt.reference))
            rows.append({"run": run_dir.name, "checkpoint": checkpoint, "prompt_set": prompt_set,
                         "prompt_idx": prompt.idx, "sample": int(answer["sample"]), "category": prompt.category,
                         "prompt": prompt.user_text(), "reference": prompt.reference, "answer": answer["answer"],
                         "verdict": verdict.verdict, "checker": verdict.checker, "errors": list(verdict.errors),
                         "line": verdict.line, "code": code, "match": match,
                         "truncated": bool(answer.get("truncated"))})
        summary = evals.summarise(rows, int(header.get("samples", 0)))
        self.store.eval_replace({"run": run_dir.name, "checkpoint": checkpoint, "prompt_set": prompt_set,
                                 "run_dir": str(run_dir), "step": header.get("step"), "model": str(header.get("model", "")),
                                 "prompts_sha256": header["prompts_sha256"], "samples": int(header.get("samples", 0)),
                                 "header": header, "summary": summary.to_dict()}, rows)
        return summary

    def ingest_run(self, run_dir: Path) -> list[evals.Summary]:
        """Score every answers file already in RUN_DIR/evals/ (a demo run, answers generated on
        another machine): one summary per (prompt set, checkpoint), stored answers skipped."""
        summaries = []
        for edir in sorted(p for p in (Path(run_dir) / evals.EVALS_DIR).glob("*") if (p / evals.PROMPTS_FILE).is_file()):
            for path in sorted(edir.glob("*.jsonl")):
                if path.name != evals.PROMPTS_FILE:
                    summaries.append(self.ingest(Path(run_dir), edir.name, path.stem))
        return summaries

    def ingest_landed(self) -> list[str]:
        """Score the answers that arrived without an `eval run` waiting for them (the box's own evals
        while training, mirrored home by the Runs screen or `tail`): every answers file in a known
        run dir whose header is not the stored one. Returns one line per file that cannot be scored."""
        problems = []
        for row in self.store.run_rows():
            root = Path(row["run_dir"]) / evals.EVALS_DIR
            for path in sorted(root.glob("*/*.jsonl")):
                if path.name == evals.PROMPTS_FILE or not (path.parent / evals.PROMPTS_FILE).is_file():
                    continue
                stored = self.store.eval_summary(row["name"], path.stem, path.parent.name)
                if stored is not None and stored["header"] == evals.read_answers_header(path):
                    continue
                try:
                    self.ingest(Path(row["run_dir"]), path.parent.name, path.stem)
                except ZeldaError as exc:
                    problems.append(str(exc))
        return problems

    def _resolve_checkpoints(self, run_dir: Path, spec: str, available: list[tuple[str, int]],
                             box: str | None = None) -> list[tuple[str, int]]:
        """`all`, `base`, `final`, `N` / `checkpoint-N`, or a comma list of those, among
        `available` (the complete ones here, or on the run's `box`)."""
        steps = dict(available)
        where = f" on {box}" if box else ""
        if spec.strip() == "all":
            if box and len(available) == 1:  # only the base model
                raise ZeldaError(f"{run_dir.name}: no checkpoint{where} yet (one lands every "
                                 f"train.checkpoint_every_steps); `--checkpoint base` evaluates the base model alone",
                                 exit_code=1)
            return available
        chosen: list[tuple[str, int]] = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            name = f"checkpoint-{part}" if part.isdigit() else part
            if (name == evals.FINAL and name not in steps and not box
                    and (run_dir / runs.ADAPTERS / "adapter_config.json").is_file()):
                steps[name] = evals.checkpoint_step(run_dir, name) or 0
            if name not in steps:
                known = ", ".join(n for n, _ in available)
                raise ZeldaError(f"{run_dir.name}: no checkpoint '{part}'{where} (complete ones: {known})", exit_code=2)
            if name not in dict(chosen):
                chosen.append((name, steps[name]))
        if not chosen:
            raise ZeldaError("eval: --checkpoint is empty", exit_code=2)
        return chosen

    # --- prompt sets ---------------------------------------------------------------------
    def prompts_from_mix(self, mix: str, out: Path, limit: int | None = None) -> tuple[int, Path]:
        """A prompt file from a mix's eval split (built first when missing): the held-out
        records of every dataset, output as the reference, dataset as the category."""
        from ..core.jsonl import iter_records

        bundle = self.config.mix_dir(mix)
        self.config.mix(mix)  # a clear error for an unknown mix
        if not (bundle / "metadata.json").is_file():
            self.datasets.mix_build(mix)
        eval_path = bundle / "eval.jsonl"
        sources_path = bundle / EVAL_SOURCES
        records = [rec for _, rec, _ in iter_records(eval_path) if isinstance(rec, dict)]
        sources = sources_path.read_text(encoding="utf-8").split() if sources_path.is_file() else [mix] * len(records)
        if len(sources) != len(records):
            raise ZeldaError(f"{sources_path}: {len(sources)} names for {len(records)} eval records (rebuild the mix)")
        prompts = evals.prompts_from_records(zip(records, sources))
        if limit:
            prompts = prompts[:limit]
        if not prompts:
            raise ZeldaError(f"{eval_path}: no usable eval records (each needs an instruction)")
        out = Path(out)
        evals.write_prompt_file(out, prompts)
        return len(prompts), out

    # --- reading results -----------------------------------------------------------------
    def prompt_sets(self) -> list[PromptSetRow]:
        """Prompt sets with results, the last scored first."""
        return [PromptSetRow(**row) for row in self.store.eval_prompt_sets()]

    def leaderboard(self, prompt_set: str | None = None, sort: str = DEFAULT_SORT) -> LeaderboardView:
        """Every scored checkpoint of one prompt set (default: the last one scored), ranked.

        The base model is a row like the others (checkpoint `base`, step 0); several runs over
        the same base model and prompt set share one base row. Eval losses come from the
        run's metrics.jsonl at the checkpoint's step; an exported checkpoint's `exported` from
        its export.json (what was exported and how it verified).
        """
        self.ingest_landed()
        sets = [s.prompt_set for s in self.prompt_sets()]
        if prompt_set is None:
            prompt_set = sets[0] if sets else None
        elif prompt_set not in sets:
            raise ZeldaError(f"no eval results for prompt set '{prompt_set}' (scored: {', '.join(sets) or 'none yet'})",
                             exit_code=2)
        rows: list[LeaderboardRow] = []
        run_dirs: dict[str, str] = {}  # run -> its run dir, for early stopping's pick
        if prompt_set is not None:
            summaries = self.store.eval_summaries(prompt_set)
            latest_sha = summaries[-1]["prompts_sha256"] if summaries else ""
            metrics_cache: dict[str, list[dict]] = {}
            seen_base: set[tuple[str, str, str]] = set()
            for s in reversed(summaries):  # newest first, so a shared base row is the newest one
                if s["checkpoint"] == evals.BASE:
                    key = (s["model"], s["prompts_sha256"], str(s["samples"]))
                    if key in seen_base:
                        continue
                    seen_base.add(key)
                else:
                    run_dirs[s["run"]] = s["run_dir"]
                rows.append(self._leaderboard_row(s, latest_sha, metrics_cache))
        picks = {}
        for run, run_dir in run_dirs.items():
            status = runs.read_status(Path(run_dir))
            if status is not None and status.best_checkpoint:
                picks[run] = Path(status.best_checkpoint).name
        return LeaderboardView(prompt_set, sets, sort, rank(mark_best(rows, picks), sort))

    def _leaderboard_row(self, s: dict, latest_sha: str, metrics_cache: dict[str, list[dict]]) -> LeaderboardRow:
        loss: dict = {"eval_loss": None, "by_dataset": {}}
        if s["checkpoint"] != evals.BASE:
            if s["run_dir"] not in metrics_cache:
                metrics_cache[s["run_dir"]] = runs.read_metrics(Path(s["run_dir"]))
            loss = evals.eval_loss_at(metrics_cache[s["run_dir"]], s["step"])
        row = LeaderboardRow.scored(s["run"], s["checkpoint"], s["step"], s["model"], s["prompt_set"],
                                          evals.Summary.from_dict(s["summary"]), loss,
                                          s["prompts_sha256"] != latest_sha, s["created"])
        if row.is_base:
            return row
        return replace(row, exported=export_mark(export_runner.read_record(Path(s["run_dir"]), s["checkpoint"])))

    def samples(self, run: str, checkpoint: str, prompt_set: str, prompt_idx: int | None = None) -> list[SampleRow]:
        """Every stored answer of one checkpoint (prompt, answer, verdict, errors, failing line)."""
        return [SampleRow.from_record(r) for r in self.store.eval_rows(run, checkpoint, prompt_set, prompt_idx)]
