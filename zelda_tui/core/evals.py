"""Evaluation of checkpoints, the pure part: prompt files, answer files and scoring.

Prompt file (JSONL, one prompt a line; blank lines skipped):

    {"instruction": "...", "input": "...", "reference": "...", "category": "...", "id": "..."}

`instruction` is required (a non-empty string); `input`, `reference` (the expected answer,
prose and a fenced code block, or bare code), `category` and `id` are optional strings;
other keys are kept as they are. A line that is not a JSON object, or has a field of the
wrong type, is reported as `FILE:LINE: ...` and skipped; the other prompts still run.
A prompt's index is its position among the file's non-blank lines, so fixing a bad line
never renumbers the others.

Answer file (`RUN_DIR/evals/<prompt set>/<checkpoint>.jsonl`, written atomically by the
generator once a checkpoint is complete): a header line `{"header": {...}}` with the
generation request (prompts sha256, samples, max_new_tokens, seed, ...), then one line per
(prompt, sample): sample 0 is the greedy answer, samples 1..K are sampled for pass@k.

Scores per checkpoint: assemble rate and the rate of every verdict class over the greedy
answers, unbiased pass@k (Chen et al. 2021) over the K samples, normalised match of the
greedy answer's code against the reference, and per-category assemble rates. Ranking them is
`core.leaderboard`; the generator's lock and worker.json are `core.eval_worker`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import atomic, runs
from .errors import ZeldaError
from .jsonl import JSONDecodeError, loads, read_bytes, split_lines

EVALS_DIR = "evals"
PROMPTS_FILE = "prompts.jsonl"  # the valid prompts of a set, as evaluated (inside the eval dir)
GENERATE_LOG = "generate.log"
EVENTS_FILE = "generate.events"  # the generator's JSON events, appended (a detached generator's stdout)
BASE = "base"  # the base model without adapter
FINAL = "final"  # lora_adapters/ when no checkpoint holds the same weights
VERDICTS = ("assembles", "syntax_error", "unresolved_label", "timeout", "crash", "empty", "other")
# the request fields an answer file must match to be reused (device and timings may differ)
REQUEST_KEYS = ("model", "adapter", "prompts_sha256", "samples", "max_new_tokens", "seed", "temperature", "top_p")
SHIPPED_PROMPTS = Path(__file__).with_name("eval_data") / "demo_prompts.jsonl"
_SET_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# --- prompts -----------------------------------------------------------------------------


@dataclass
class GenerateOptions:
    """How answers are generated; every field is part of what makes an answers file reusable.

    One definition for the CLI, the TUI dialog, the services and the generator program.
    """

    samples: int = 0  # sampled answers per prompt (pass@k), besides the greedy one
    max_new_tokens: int = 256
    batch_size: int = 8
    seed: int = 0
    temperature: float = 0.8
    top_p: float = 0.95
    device: str = ""  # "" = run.toml's train.device

    def argv(self) -> list[str]:
        """The generator program's flags for these options."""
        out = ["--samples", str(self.samples), "--max-new-tokens", str(self.max_new_tokens),
               "--batch-size", str(self.batch_size), "--seed", str(self.seed),
               "--temperature", repr(self.temperature), "--top-p", repr(self.top_p)]
        return out + (["--device", self.device] if self.device else [])


@dataclass
class Prompt:
    idx: int  # position among the file's non-blank lines (stable when another line is fixed)
    line: int  # 1-based line in the source file, for messages
    instruction: str
    input: str = ""
    reference: str | None = None
    category: str = ""
    id: str = ""
    extra: dict = field(default_factory=dict)

    def user_text(self) -> str:
        """The user turn exactly as the trainer builds it from instruction + input."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction

    def to_record(self) -> dict:
        rec: dict[str, Any] = {"idx": self.idx, "line": self.line, "instruction": self.instruction}
        if self.input:
            rec["input"] = self.input
        if self.reference is not None:
            rec["reference"] = self.reference
        if self.category:
            rec["category"] = self.category
        if self.id:
            rec["id"] = self.id
        return {**rec, **self.extra}


@dataclass
class PromptFile:
    path: Path
    name: str  # the prompt set's name: the file stem, made safe for a directory name
    prompts: list[Prompt]
    problems: list[str]  # one `FILE:LINE: ...` message per skipped line
    sha256: str  # of the valid prompts as evaluated (prompts.jsonl), not of the raw file


_OPTIONAL = ("input", "reference", "category", "id")


def prompt_from_record(obj: Any, idx: int, lineno: int, where: str) -> Prompt:
    if not isinstance(obj, dict):
        raise ZeldaError(f"{where}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    instruction = obj.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        what = "missing" if instruction is None else f"must be a non-empty string, got {json.dumps(instruction)[:40]}"
        raise ZeldaError(f"{where}:{lineno}: field `instruction` {what}")
    values: dict[str, Any] = {}
    for key in _OPTIONAL:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise ZeldaError(f"{where}:{lineno}: field `{key}` must be a string, got {type(value).__name__}")
        values[key] = value
    known = {"instruction", "idx", "line", *_OPTIONAL}
    return Prompt(idx=idx, line=lineno, instruction=instruction, input=values["input"] or "",
                  reference=values["reference"], category=values["category"] or "", id=values["id"] or "",
                  extra={k: v for k, v in obj.items() if k not in known})


def _json_reason(exc: Exception) -> str:
    msg, col = getattr(exc, "msg", None), getattr(exc, "colno", None)
    if msg:
        return f"{msg}: column {col}" if col else msg
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def prompt_set_name(path: Path) -> str:
    name = _SET_NAME.sub("_", Path(path).name.removesuffix(".jsonl").removesuffix(".json")).strip("._")
    return name or "prompts"


def parse_prompts(path: Path, name: str | None = None) -> PromptFile:
    """Read a prompt file; bad lines become problems (named by line), never an exception.

    Raises ZeldaError only when the file cannot be read or holds no valid prompt at all.
    """
    path = Path(path)
    prompts: list[Prompt] = []
    problems: list[str] = []
    idx = 0
    for lineno, raw in enumerate(split_lines(read_bytes(path)), 1):
        if not raw.strip():
            continue
        try:
            try:
                obj = loads(raw)
            except JSONDecodeError as exc:
                raise ZeldaError(f"{path}:{lineno}: not JSON ({_json_reason(exc)})") from None
            prompts.append(prompt_from_record(obj, idx, lineno, str(path)))
        except ZeldaError as exc:
            problems.append(str(exc))
        idx += 1
    if not prompts:
        reason = problems[0] if problems else f"{path}: no prompts (an empty file)"
        raise ZeldaError(reason if not problems else f"{reason} (and no valid prompt in the file)")
    return PromptFile(path, name or prompt_set_name(path), prompts, problems, sha256_text(prompts_jsonl(prompts)))


def prompts_jsonl(prompts: Iterable[Prompt]) -> str:
    return "".join(json.dumps(p.to_record(), ensure_ascii=False, sort_keys=True) + "\n" for p in prompts)


def read_eval_prompts(path: Path) -> list[Prompt]:
    """The prompts.jsonl written into an eval dir (already validated: idx and line kept)."""
    out = []
    for lineno, raw in enumerate(split_lines(read_bytes(path)), 1):
        if raw.strip():
            try:
                rec = loads(raw)
            except JSONDecodeError:
                raise ZeldaError(f"{path}:{lineno}: not JSON (was the eval dir edited by hand?)") from None
            out.append(prompt_from_record(rec, int(rec["idx"]), int(rec["line"]), str(path)))
    return out


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the eval dir ----------------------------------------------------------------------------


def eval_dir(run_dir: Path, prompt_set: str) -> Path:
    return Path(run_dir) / EVALS_DIR / prompt_set


def answers_path(run_dir: Path, prompt_set: str, checkpoint: str) -> Path:
    return eval_dir(run_dir, prompt_set) / f"{checkpoint}.jsonl"


# --- checkpoints and generation requests --------------------------------------------------


def adapter_signature(adapter_dir: Path | None) -> str:
    """Which weights an answer file came from: size and mtime of the adapter file (or 'none')."""
    if adapter_dir is None:
        return "none"
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        p = Path(adapter_dir) / name
        if p.is_file():
            st = p.stat()
            return f"{name}:{st.st_size}:{st.st_mtime_ns}"
    return "missing"


def generation_request(model: str, adapter_dir: Path | None, prompts_sha256: str, samples: int, max_new_tokens: int,
                       seed: int, temperature: float, top_p: float) -> dict:
    return {"model": model, "adapter": adapter_signature(adapter_dir), "prompts_sha256": prompts_sha256,
            "samples": int(samples), "max_new_tokens": int(max_new_tokens), "seed": int(seed),
            "temperature": float(temperature), "top_p": float(top_p)}


def checkpoint_dir(run_dir: Path, checkpoint: str) -> Path | None:
    """The adapter dir of `base` (None), `final` (lora_adapters/) or `checkpoint-N`."""
    if checkpoint == BASE:
        return None
    if checkpoint == FINAL:
        return Path(run_dir) / runs.ADAPTERS
    return Path(run_dir) / runs.CHECKPOINTS / checkpoint


def checkpoint_step(run_dir: Path, checkpoint: str) -> int | None:
    """The training step of `base` (0), `checkpoint-N` (N) or `final` (the run's last step)."""
    if checkpoint == BASE:
        return 0
    if checkpoint == FINAL:
        status = runs.read_status(run_dir)
        return status.step if status else None
    tail = checkpoint.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def eval_checkpoints(run_dir: Path) -> list[tuple[str, int]]:
    """(name, step) of everything an `all` eval covers in a run dir here (covered_checkpoints)."""
    final = (Path(run_dir) / runs.ADAPTERS / "adapter_config.json").is_file()
    return covered_checkpoints([step for step, _ in runs.checkpoints(run_dir)], runs.read_status(run_dir), final)


def covered_checkpoints(steps: list[int], status: runs.RunStatus | None, has_final: bool) -> list[tuple[str, int]]:
    """The base, each complete checkpoint, and the final adapters when no checkpoint holds the same
    weights (not saved at a checkpoint step, and not the best checkpoint reloaded by early
    stopping): one rule for a run dir here and one on its box."""
    found = [(BASE, 0)] + [(f"checkpoint-{step}", step) for step in steps]
    if has_final and status is not None and not status.best_checkpoint and status.step not in steps:
        found.append((FINAL, status.step))
    return found


# --- answer files ----------------------------------------------------------------------------


def write_answers(path: Path, header: dict, answers: list[dict]) -> None:
    """All answers of one checkpoint in one atomic write: a file that exists is complete."""
    lines = [json.dumps({"header": header}, ensure_ascii=False)]
    lines += [json.dumps(a, ensure_ascii=False) for a in answers]
    atomic.write_text(path, "\n".join(lines) + "\n")


def read_answers(path: Path) -> tuple[dict, list[dict]]:
    lines = [ln for ln in split_lines(read_bytes(path)) if ln.strip()]
    try:
        first = loads(lines[0]) if lines else None
        if not isinstance(first, dict) or not isinstance(first.get("header"), dict):
            raise ZeldaError(f"{path}:1: not an answers file (no header line)")
        answers = []
        for lineno, raw in enumerate(lines[1:], 2):
            rec = loads(raw)
            if not isinstance(rec, dict) or not isinstance(rec.get("answer"), str):
                raise ZeldaError(f"{path}:{lineno}: an answer line needs `prompt_idx`, `sample` and `answer`")
            answers.append(rec)
    except JSONDecodeError:
        raise ZeldaError(f"{path}: not JSON (a damaged answers file: delete it to generate again)") from None
    return first["header"], answers


def read_answers_header(path: Path) -> dict | None:
    """Only the header line of an answers file (None when it has none): enough to tell whether it
    is the one already stored, without reading every answer."""
    try:
        with open(path, "rb") as fh:
            first = loads(fh.readline())
    except (OSError, *JSONDecodeError):
        return None
    header = first.get("header") if isinstance(first, dict) else None
    return header if isinstance(header, dict) else None


def answers_complete(path: Path, request: dict) -> bool:
    """True when the file exists and was generated for exactly this request."""
    if not Path(path).is_file():
        return False
    try:
        header, answers = read_answers(path)
    except ZeldaError:
        return False
    if any(header.get(k) != request.get(k) for k in REQUEST_KEYS):
        return False
    return len(answers) == header.get("expected", -1)


# --- scores ----------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class Summary:
    """The scores of one (run, checkpoint, prompt set)."""

    prompts: int = 0
    samples: int = 0  # K sampled answers a prompt (0: greedy only, no pass@k)
    assemble_rate: float | None = None
    rates: dict[str, float] = field(default_factory=dict)  # verdict -> share of greedy answers
    counts: dict[str, int] = field(default_factory=dict)
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    with_reference: int = 0
    matched: int = 0
    match_rate: float | None = None
    truncated: int = 0
    by_category: dict[str, dict] = field(default_factory=dict)  # category -> {prompts, assemble_rate}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Summary":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def summarise(rows: list[dict], samples: int) -> Summary:
    """Rows have prompt_idx, sample, verdict, match (bool or None), category, truncated."""
    greedy = [r for r in rows if r["sample"] == 0]
    s = Summary(prompts=len(greedy), samples=samples)
    if not greedy:
        return s
    raw = Counter(r["verdict"] for r in greedy)
    s.counts = {v: raw[v] for v in VERDICTS if raw[v]} | {v: n for v, n in raw.items() if v not in VERDICTS}
    s.truncated = sum(bool(r.get("truncated")) for r in greedy)
    s.rates = {v: n / len(greedy) for v, n in s.counts.items()}
    s.assemble_rate = s.counts.get("assembles", 0) / len(greedy)
    refs = [r for r in greedy if r.get("match") is not None]
    s.with_reference = len(refs)
    s.matched = sum(1 for r in refs if r["match"])
    s.match_rate = s.matched / len(refs) if refs else None
    cats: dict[str, list[dict]] = {}
    for r in greedy:
        cats.setdefault(r.get("category") or "", []).append(r)
    s.by_category = {c: {"prompts": len(rs), "assemble_rate": sum(r["verdict"] == "assembles" for r in rs) / len(rs)}
                     for c, rs in sorted(cats.items()) if c}
    if samples > 0:
        per_prompt: dict[int, list[bool]] = {}
        for r in rows:
            if r["sample"] > 0:
                per_prompt.setdefault(r["prompt_idx"], []).append(r["verdict"] == "assembles")
        scored = [v for v in per_prompt.values() if len(v) >= 1]
        if scored:
            s.pass_at_1 = sum(pass_at_k(len(v), sum(v), 1) for v in scored) / len(scored)
            s.pass_at_k = sum(pass_at_k(len(v), sum(v), min(samples, len(v))) for v in scored) / len(scored)
    return s


def eval_loss_at(metrics: list[dict], step: int | None) -> dict:
    """The eval event of a checkpoint's step (else the last one before it): overall and per dataset."""
    if step is None or step <= 0:
        return {"eval_loss": None, "by_dataset": {}}
    evals = [m for m in metrics if m.get("event") == "eval" and isinstance(m.get("step"), int) and m["step"] <= step]
    if not evals:
        return {"eval_loss": None, "by_dataset": {}}
    exact = [m for m in evals if m["step"] == step]
    event = (exact or evals)[-1]
    return {"eval_loss": event.get("eval_loss"), "at_step": event["step"],
            "by_dataset": {k.split("/", 1)[1]: v for k, v in event.items() if k.startswith("eval_loss/")}}


# --- prompt files from a mix's eval split -------------------------------------------------


def prompts_from_records(records: Iterable[tuple[dict, str]]) -> list[dict]:
    """Prompt lines from dataset records (a mix's eval split): output becomes the reference.

    `records` are (record, dataset name); chat records use their first user turn as the
    instruction and the assistant turn after it as the reference.
    """
    out = []
    for i, (rec, dataset) in enumerate(records, 1):
        instruction: object  # a str, or whatever a hand-written record holds (checked below)
        if isinstance(rec.get("messages"), list):
            msgs = [m for m in rec["messages"] if isinstance(m, dict)]
            user = next((j for j, m in enumerate(msgs) if m.get("role") == "user"), None)
            if user is None:
                continue
            instruction, inp = str(msgs[user].get("content") or ""), ""
            answer = next((str(m.get("content") or "") for m in msgs[user + 1:] if m.get("role") == "assistant"), None)
        else:
            instruction, inp, answer = rec.get("instruction"), rec.get("input") or "", rec.get("output")
        if not isinstance(instruction, str) or not instruction.strip():
            continue
        prompt: dict[str, Any] = {"id": f"{dataset}-{i}", "category": str(rec.get("domain") or dataset),
                                  "dataset": dataset, "instruction": instruction}
        if inp and isinstance(inp, str):
            prompt["input"] = inp
        if isinstance(answer, str) and answer:
            prompt["reference"] = answer
        out.append(prompt)
    return out


def write_prompt_file(path: Path, prompts: list[dict]) -> None:
    atomic.write_text(path, "".join(json.dumps(p, ensure_ascii=True) + "\n" for p in prompts))
