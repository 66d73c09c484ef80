"""Exporting a checkpoint: the export dir's layout, the GGUF types, and running the export program.

    RUN_DIR/export/<checkpoint>/merged/       bf16 safetensors shards in the base's own layout,
                                              tokenizer, chat template, README.md (the card)
    RUN_DIR/export/<checkpoint>/gguf/         <run>-<checkpoint>-<type>.gguf
    RUN_DIR/export/<checkpoint>/export.json   what was exported, from what, and how it verified
    RUN_DIR/export/<checkpoint>/export.log    the export program's log
    RUN_DIR/export/<checkpoint>/export.events its JSON events, when it runs detached on a run's box
    RUN_DIR/export/.<checkpoint>.lock         held by the export of that checkpoint while it runs

The export program (`python -m zelda_tui.backends.trainer.export`) is a child process like the
eval generator (torch never enters the app): its stdout is one JSON event a line. Everything
it writes is written beside and renamed into place, so a directory or file under the names
above is complete.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping

from .generate_runner import run_child

MODULE = "zelda_tui.backends.trainer.export"
EXPORT_DIR = "export"
MERGED = "merged"
GGUF = "gguf"
RECORD = "export.json"
LOG = "export.log"
EVENTS = "export.events"
EXPORT_STACK = ("torch", "transformers", "peft")  # what the export program imports (the eval generator's stack)

# type asked -> (llama.cpp's LLAMA_FTYPE_MOSTLY_* name, bytes per parameter, for the disk check)
GGUF_TYPES: dict[str, tuple[str, float]] = {
    "f16": ("F16", 2.0), "bf16": ("BF16", 2.0), "q8_0": ("Q8_0", 1.0625), "q6_k": ("Q6_K", 0.82),
    "q5_k_m": ("Q5_K_M", 0.71), "q4_k_m": ("Q4_K_M", 0.61), "q4_k_s": ("Q4_K_S", 0.58), "q4_0": ("Q4_0", 0.5625),
}
SIXTEEN_BIT = ("f16", "bf16")  # what llama.cpp's converter writes; the other types are quantised from it

# llama.cpp's own converter: the llama-cpp-python sdist's vendor/llama.cpp, unpacked by `make llama-cpp`
LLAMA_CPP_ENV = "ZELDA_TUI_LLAMA_CPP"
LLAMA_CPP_DEV = Path(".tools/llama-cpp/llama.cpp")
CONVERTER = "convert_hf_to_gguf.py"
LLAMA_CPP_PYTHON = "0.3.36"  # the llama-cpp-python release whose llama.cpp converts and runs GGUF (scripts/get-llama-cpp.sh)
# a CPU build of the bindings alone: what the export's GGUF check runs (the compile is the slow part)
LLAMA_CPP_CMAKE_ARGS = ("-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF "
                        "-DLLAMA_BUILD_SERVER=OFF")


def export_dir(run_dir: Path, checkpoint: str) -> Path:
    return Path(run_dir) / EXPORT_DIR / checkpoint


def lock_path(run_dir: PurePath, checkpoint: str) -> PurePath:
    """The lock the export of a checkpoint holds (beside its dir: nothing of ours left inside it)."""
    return run_dir / EXPORT_DIR / f".{checkpoint}.lock"


def read_record(run_dir: Path, checkpoint: str) -> dict[str, Any] | None:
    """export.json of a checkpoint (None when nothing was exported or it cannot be read)."""
    try:
        data = json.loads((export_dir(run_dir, checkpoint) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def gguf_plan(types: list[str]) -> list[str]:
    """The GGUF files an export writes for the types asked: the 16-bit one first (f16 when asked,
    else bf16), then each quantisation of it."""
    first = "f16" if "f16" in types else "bf16"
    return [first] + [t for t in dict.fromkeys(types) if t != first]


def find_llama_cpp(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The llama.cpp source dir holding convert_hf_to_gguf.py: $ZELDA_TUI_LLAMA_CPP, else the
    checkout's .tools/llama-cpp/llama.cpp (from `make llama-cpp`)."""
    found = (os.environ if env is None else env).get(LLAMA_CPP_ENV)
    candidates = [Path(found)] if found else []
    candidates.append((cwd or Path.cwd()) / LLAMA_CPP_DEV)
    candidates.append(Path(__file__).resolve().parents[2] / LLAMA_CPP_DEV)
    for path in candidates:
        if (path / CONVERTER).is_file():
            return path.resolve()
    return None


@dataclass
class ExportRequest:
    run_dir: PurePath  # here, or the run dir on its box
    checkpoint: str  # final | checkpoint-N
    gguf: list[str] = field(default_factory=list)
    device: str = ""  # "" = cuda when it holds the model, else cpu
    llama_cpp: PurePath | None = None
    gguf_pre: str = ""  # llama.cpp pre-tokenizer name, for a tokenizer its converter does not recognise
    max_new_tokens: int = 32
    scores: dict[str, Any] = field(default_factory=dict)  # eval scores per prompt set, for the model card

    def command(self, python: str | None = None) -> list[str]:
        cmd = [python or sys.executable, "-m", MODULE, str(self.run_dir), "--checkpoint", self.checkpoint,
               "--max-new-tokens", str(self.max_new_tokens)]
        if self.gguf:
            cmd += ["--gguf", ",".join(self.gguf)]
        if self.device:
            cmd += ["--device", self.device]
        if self.llama_cpp is not None:
            cmd += ["--llama-cpp", str(self.llama_cpp)]
        if self.gguf_pre:
            cmd += ["--gguf-pre", self.gguf_pre]
        return cmd + ["--scores", json.dumps(self.scores)]


def run_export(request: ExportRequest, on_event: Callable[[dict], None], cancel: threading.Event | None = None) -> int:
    """Run the export program to the end (or until `cancel`); returns its exit code. Its log goes
    to export.log beside what it writes."""
    out = export_dir(Path(request.run_dir), request.checkpoint)
    return run_child(request.command(), Path(request.run_dir), out / LOG, on_event, cancel)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def card_text(record: dict[str, Any]) -> str:
    """The merged model's README.md: what it is made of, its eval scores, how it verified, versions."""
    merged = record.get("merged") or {}
    phase = f" (phase {record['phase']})" if record.get("phase") is not None else ""
    lines = [
        f"# {record['run']} ({record['checkpoint']}, merged)", "",
        f"`{record['base']}` with the LoRA adapter of zelda-tui run `{record['run']}` merged into its bf16 weights: "
        "sharded safetensors in the base's own tensor layout, with the tokenizer and chat template.", "",
        "## Provenance", "",
        f"- base: `{record['base']}`",
        f"- run: `{record['run']}`, checkpoint `{record['checkpoint']}` (step {record.get('step')})",
        f"- adapter: `{record.get('adapter')}`",
        f"- mix: `{record.get('mix') or '-'}`{phase}",
        *[f"- data sha256 {name}: `{digest}`" for name, digest in sorted((record.get("data_sha256") or {}).items())],
        "", "## Eval scores", "",
    ]
    scores = record.get("eval_scores") or {}
    if scores:
        lines += ["| prompt set | prompts | assembles | pass@1 | pass@k | match |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {s.get('prompts')} | {_pct(s.get('assemble_rate'))} | {_pct(s.get('pass_at_1'))} | "
                  f"{_pct(s.get('pass_at_k'))} | {_pct(s.get('match_rate'))} |" for name, s in sorted(scores.items())]
    else:
        lines.append(f"None recorded for this checkpoint (`zelda-tui eval run --run {record['run']}`).")
    lines += ["", "## Verification", ""]
    if merged:
        lines += [
            f"- merged vs base + adapter (unmerged), next-token logits at {merged.get('positions')} positions of "
            f"{len(merged.get('prompts') or [])} held-out prompts: max difference {merged.get('max_abs_diff')} "
            f"(tolerance {merged.get('tolerance')}; the adapter itself moves them by up to {merged.get('adapter_effect')}), "
            f"top-1 agreement {_pct(merged.get('top1_agreement'))}",
            f"- tensor layout: {merged.get('layout')}",
        ]
    for kind, g in (record.get("gguf") or {}).items():
        lines.append(f"- GGUF {kind} (`{g.get('file')}`, {g.get('bytes', 0) / 1e6:.1f} MB): greedy chat answers identical "
                     f"to the merged model's on {g.get('same')}/{g.get('prompts')} prompts, mean common prefix "
                     f"{_pct(g.get('prefix_agreement'))}" + (f". Note: {g['note']}" if g.get("note") else ""))
    lines += ["", "## Versions", "", *[f"- {k}: {v}" for k, v in (record.get("versions") or {}).items()], ""]
    return "\n".join(lines)
