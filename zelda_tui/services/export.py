"""Exports: a checkpoint merged into its base (bf16 safetensors) and GGUF files, verified by running them.

The work is the export program (`backends/trainer/export.py`, a child process like the eval
generator). It runs where the base model is: for a remote run on its box, detached like the
trainer with the run's verified python (`backends/box_export`), followed over SSH, and what was
asked is brought home; for a local run (or `here=True`: a remote run whose box is gone, from
adapters fetched here) on this machine. This service picks the checkpoint (`N`, `best` from the
leaderboard, `final`), refuses what cannot work before anything starts (no adapters, an unknown
checkpoint or GGUF type, GGUF without llama.cpp here), hands the program the checkpoint's eval
scores for the model card, and reads back export.json.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

from ..backends import export_runner as layout
from ..backends.box_export import BoxExport
from ..backends.hosts import SshHost
from ..core import runs
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.evals import BASE, FINAL
from ..core.store import Store
from .evals import EvalService, generator_stack_missing
from .runs import RunService
from .views import View

Progress = Callable[[str], None]
GGUF_TYPES = tuple(layout.GGUF_TYPES)  # what --gguf takes (the screens' dialog checks against it)
SCORE_KEYS = ("prompts", "samples", "assemble_rate", "pass_at_1", "pass_at_k", "match_rate")


@dataclass(frozen=True)
class ExportView(View):
    """What an export made (`export --json`): export.json's record plus where it is."""

    run: str
    checkpoint: str
    path: str
    merged: dict[str, Any] | None
    gguf: dict[str, Any]
    record: dict[str, Any]
    host: str = "local"  # where it was made
    remote_path: str | None = None  # the export dir on the box (a remote run's)
    brought: list[str] = field(default_factory=list)  # what came home from the box (export-dir relative)


@dataclass
class ExportService:
    config: Config
    store: Store
    runs: RunService
    evals: EvalService

    # --- which adapter ---------------------------------------------------------------------
    def resolve_checkpoint(self, run_dir: Path, wanted: str) -> str:
        """`final`, `best` (the run's top leaderboard row), `N` or `checkpoint-N` -> final | checkpoint-N,
        from the adapters in the run dir here."""
        steps = [step for step, _ in runs.checkpoints(run_dir)]
        return self._resolve(run_dir, steps, (run_dir / runs.ADAPTERS / "adapter_config.json").is_file(), wanted, "")

    def _resolve(self, run_dir: Path, steps: list[int], final: bool, wanted: str, where: str) -> str:
        """The same over the adapters somewhere (`where`: "" here, " on <box>" there)."""
        have = ", ".join(([FINAL] if final else []) + [f"checkpoint-{s}" for s in sorted(steps)])
        if not have:
            raise ZeldaError(f"{run_dir.name} has no adapters to export{where} (no lora_adapters/, no complete "
                             "checkpoint under checkpoints/)")
        choice = wanted.strip().lower()
        if choice == "best":
            choice = self._best(run_dir)
        if choice == FINAL:
            if not final:
                raise ZeldaError(f"{run_dir.name} has no final adapters{where} (lora_adapters/; it has not completed): "
                                 f"export one of {have}", exit_code=2)
            return FINAL
        step = choice.removeprefix("checkpoint-")
        if not step.isdigit():
            raise ZeldaError(f"--checkpoint: '{wanted}' is not N, checkpoint-N, best or final", exit_code=2)
        if int(step) not in steps:
            raise ZeldaError(f"{run_dir.name} has no complete checkpoint-{int(step)}{where} (it has: {have})", exit_code=2)
        return f"checkpoint-{int(step)}"

    def _best(self, run_dir: Path) -> str:
        """The run's best-ranked checkpoint on the leaderboard (its last scored prompt set), else
        the early-stopping best the trainer recorded."""
        rows = [r for r in self.evals.leaderboard().rows if r.run == run_dir.name and not r.is_base]
        if rows:
            return rows[0].checkpoint
        status = runs.read_status(run_dir)
        if status is not None and status.best_checkpoint:
            return Path(status.best_checkpoint).name
        raise ZeldaError(f"{run_dir.name} has no eval scores to pick the best checkpoint from: `zelda-tui eval run "
                         f"--run {run_dir.name}`, or name one (--checkpoint N or final)", exit_code=2)

    def scores(self, run: str, checkpoint: str) -> dict[str, dict[str, Any]]:
        """The checkpoint's eval scores per prompt set, as the leaderboard has them (for the card)."""
        return {s["prompt_set"]: {k: s["summary"].get(k) for k in SCORE_KEYS}
                for s in self.store.eval_summaries() if s["run"] == run and s["checkpoint"] == checkpoint}

    # --- exporting -------------------------------------------------------------------------
    def export(self, run: str, checkpoint: str = FINAL, gguf: list[str] | None = None, device: str = "",
               gguf_pre: str = "", progress: Progress | None = None, cancel: threading.Event | None = None,
               *, merged: bool | None = None, here: bool = False) -> ExportView:
        """Merge (and convert) one checkpoint of a run where its base model is; one line of error
        for what cannot work. A remote run's export runs on its box (`here`: on this machine, from
        adapters fetched here) and brings home the merged model when `merged` (default: when no
        GGUF is asked) and the GGUF files asked."""
        run_dir = self.runs.dir(run)
        types = [t.strip().lower() for t in gguf or [] if t.strip()]
        unknown = [t for t in types if t not in layout.GGUF_TYPES]
        if unknown:
            raise ZeldaError(f"--gguf: unknown type '{unknown[0]}' (known: {', '.join(layout.GGUF_TYPES)})", exit_code=2)
        if checkpoint == BASE:
            raise ZeldaError("--checkpoint base: the base model has no adapter to merge", exit_code=2)
        say = progress or (lambda _: None)
        errors: list[str] = []
        on_event = _events(say, errors)
        host = self.runs.host(run)
        if isinstance(host, SshHost) and not here:
            return self._export_on_box(BoxExport(host, run_dir), checkpoint, types, device, gguf_pre, say, on_event,
                                       errors, cancel, merged if merged is not None else not types)
        if host.is_remote and not self._has_adapters(run_dir):
            raise ZeldaError(f"{run_dir.name}: no adapters here to export from: `zelda-tui train fetch {run_dir.name} "
                             "--checkpoint all` first (the base model must be on this machine too), or export on the box "
                             "(without --here)")
        name = self.resolve_checkpoint(run_dir, checkpoint)
        missing = generator_stack_missing()
        if missing:
            raise ZeldaError(missing.replace("generating eval answers", "exporting"))
        llama_cpp = layout.find_llama_cpp() if types else None
        if types and (llama_cpp is None or find_spec("llama_cpp") is None):
            raise ZeldaError("GGUF export needs llama.cpp's converter and llama-cpp-python: `make llama-cpp` builds them "
                             f"once into {layout.LLAMA_CPP_DEV.parent} (or set ${layout.LLAMA_CPP_ENV} to a llama.cpp "
                             "source dir and pip install llama-cpp-python)")
        request = layout.ExportRequest(run_dir, name, types, device, llama_cpp, gguf_pre,
                                       scores=self.scores(run_dir.name, name))
        code = layout.run_export(request, on_event, cancel)
        if cancel is not None and cancel.is_set():
            raise ZeldaError(f"export of {run_dir.name} {name} cancelled (nothing half-written is left under the final names)")
        if errors or code != 0:
            log = layout.export_dir(run_dir, name) / layout.LOG
            raise ZeldaError(errors[0] if errors else f"the export program exited with code {code} (see {log})")
        return self._view(run_dir, name)

    def _export_on_box(self, box: BoxExport, checkpoint: str, types: list[str], device: str, gguf_pre: str,
                       say: Progress, on_event: Callable[[dict], None], errors: list[str],
                       cancel: threading.Event | None, merged: bool) -> ExportView:
        """On the run's box, detached; followed over SSH; then what was asked comes home. An export
        of the same checkpoint already running there is followed to its end first."""
        run_dir = box.run_dir
        steps, final = box.adapters()
        name = self._resolve(run_dir, steps, final, checkpoint, f" on {box.host.name}")
        request = layout.ExportRequest(run_dir, name, types, device, None, gguf_pre,
                                       scores=self.scores(run_dir.name, name))
        cancelled = (lambda: cancel.is_set()) if cancel is not None else (lambda: False)
        while True:
            job = box.start(request, say)
            errors.clear()
            if not job.attached:
                say(f"{box.host.name}: exporting on the box (pid {job.pid}); it goes on if this connection drops")
            left = ZeldaError(f"left exporting {run_dir.name} {name} on {box.host.name} (pid {job.pid}): `zelda-tui "
                              f"export {run_dir.name} --checkpoint {name}` again follows it and brings it home",
                              exit_code=130)
            try:
                if not box.follow(name, job, on_event, say, cancelled):
                    raise left
            except KeyboardInterrupt:  # ctrl+c stops the following, not the export: it goes on on the box
                raise left from None
            if not job.attached:
                break
        if errors:
            raise ZeldaError(errors[0])
        brought = box.bring_home(name, merged, types, say)
        return replace(self._view(run_dir, name), host=box.host.name, remote_path=box.remote_export_dir(name),
                       brought=brought)

    def _view(self, run_dir: Path, name: str) -> ExportView:
        record = layout.read_record(run_dir, name) or {}
        return ExportView(run=run_dir.name, checkpoint=name, path=str(layout.export_dir(run_dir, name)),
                          merged=record.get("merged"), gguf=record.get("gguf") or {}, record=record)

    def _has_adapters(self, run_dir: Path) -> bool:
        return bool(runs.checkpoints(run_dir)) or (run_dir / runs.ADAPTERS / "adapter_config.json").is_file()


def _events(progress: Progress, errors: list[str]) -> Callable[[dict], None]:
    """The export program's events as progress lines; its error lines into `errors`."""
    def on_event(event: dict) -> None:
        kind = event.get("event")
        if kind == "progress":
            progress(str(event.get("step", "")))
        elif kind == "merged":
            progress(f"merged: logits within {event.get('max_abs_diff')} of base + adapter "
                     f"(tolerance {event.get('tolerance')})")
        elif kind == "gguf":
            progress(f"gguf {event.get('type')}: {event.get('same')}/{event.get('prompts')} greedy answers as the merged "
                     "model's")
        elif kind == "error":
            errors.append(str(event.get("message", "")))
    return on_event
