"""Exact token counts for QA, when the `tokenizers` library and the model's tokenizer.json are local.

Never downloads: looks at `model.tokenizer` (a local dir or file) and then the Hugging Face
cache for `model.base`. Returns None when either piece is missing, and QA falls back to its
labelled chars-per-token estimate.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.config import ModelSpec
from ..core.inventory import TokenCounting


def _candidates(model: ModelSpec) -> list[Path]:
    paths: list[Path] = []
    if model.tokenizer:
        p = Path(model.tokenizer).expanduser()
        paths.append(p if p.suffix == ".json" else p / "tokenizer.json")
    if model.base:
        local = Path(model.base).expanduser()
        if local.is_dir():
            paths.append(local / "tokenizer.json")
        elif "/" in model.base:
            hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
            repo = hub.expanduser() / ("models--" + model.base.replace("/", "--")) / "snapshots"
            if repo.is_dir():
                paths.extend(sorted(repo.glob("*/tokenizer.json"), key=lambda p: p.stat().st_mtime, reverse=True))
    return paths


def load_token_counter(model: ModelSpec) -> TokenCounting | None:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    for path in _candidates(model):
        if path.is_file():
            tok = Tokenizer.from_file(str(path))

            def count(texts: list[str], _tok=tok) -> list[int]:
                return [len(e.ids) + 1 for e in _tok.encode_batch(texts, add_special_tokens=False)]  # +1: EOS

            return TokenCounting(name=str(path.parent.name if path.name == "tokenizer.json" else path), count=count)
    return None
