"""Samples -> token ids with an assistant-only loss mask, through the model's own chat template.

`instruction` (+ `input`) is the user turn and `output` the assistant turn; chat records with
`messages` pass through. The template is rendered one message at a time so each piece of text
is known to be prompt or answer: the generation prompt ("Assistant:") is prompt, the answer and
the closing end-of-sentence token are completion (mask 1), everything else is masked (0).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ...core import jsonl
from ...core.errors import ZeldaError


def to_messages(record: dict) -> list[dict]:
    if isinstance(record.get("messages"), list):
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    user = record.get("instruction") or ""
    if record.get("input"):
        user = f"{user}\n\n{record['input']}"
    return [{"role": "user", "content": user}, {"role": "assistant", "content": record.get("output") or ""}]


def segments(tokenizer, messages: list[dict]) -> list[tuple[str, bool]]:
    """(text, is_completion) pieces whose concatenation is the full rendered conversation."""
    render = tokenizer.apply_chat_template
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        full = render(messages[: i + 1], tokenize=False)
        if message["role"] == "assistant":
            prompt = render(messages[:i], tokenize=False, add_generation_prompt=True)
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise ZeldaError("the chat template does not render incrementally; cannot mask the prompt")
            pieces.append((prompt[len(done):], False))
            pieces.append((full[len(prompt):], True))
        else:
            if not full.startswith(done):
                raise ZeldaError("the chat template does not render incrementally; cannot mask the prompt")
            pieces.append((full[len(done):], False))
        done = full
    return [(text, flag) for text, flag in pieces if text]


def tokenize(tokenizer, record: dict) -> dict:
    ids: list[int] = []
    mask: list[int] = []
    for text, completion in segments(tokenizer, to_messages(record)):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        mask.extend([1 if completion else 0] * len(piece))
    return {"input_ids": ids, "completion_mask": mask}


def read_jsonl(path: Path) -> list[dict]:
    """A split file's records, read by core's JSONL reader (the line numbers QA and the mix use)."""
    out = []
    for lineno, raw in enumerate(jsonl.split_lines(jsonl.read_bytes(path)), 1):
        if raw.strip():
            try:
                out.append(jsonl.loads(raw))
            except jsonl.JSONDecodeError as exc:
                raise ZeldaError(f"{path}:{lineno}: not JSON ({getattr(exc, 'msg', None) or exc})") from None
    return out


def load_splits(run_dir: Path, train_file: str, eval_file: str, sources_file: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """Train records and eval records grouped by source dataset (eval_sources.txt, one name a line)."""
    train_path, eval_path, src_path = (run_dir / train_file, run_dir / eval_file, run_dir / sources_file)
    for p in (train_path, eval_path):
        if not p.is_file():
            raise ZeldaError(f"{p}: missing from the run directory")
    train = read_jsonl(train_path)
    evals = read_jsonl(eval_path)
    sources = src_path.read_text(encoding="utf-8").split() if src_path.is_file() else ["eval"] * len(evals)
    if len(sources) != len(evals):
        raise ZeldaError(f"{src_path}: {len(sources)} names for {len(evals)} eval records")
    grouped: dict[str, list[dict]] = defaultdict(list)
    for name, rec in zip(sources, evals):
        grouped[name].append(rec)
    return train, dict(grouped)
