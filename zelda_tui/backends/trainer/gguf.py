"""GGUF files from an exported merged model, made and checked by llama.cpp itself.

- the 16-bit file: llama.cpp's own `convert_hf_to_gguf.py` (from the llama-cpp-python sdist's
  vendor/llama.cpp, with its own gguf-py), run as a child process on the merged dir;
- every other type: llama.cpp's quantiser (`llama_model_quantize`, through llama-cpp-python) from
  the 16-bit file;
- each file is loaded with llama-cpp-python and answers the held-out prompts greedily through
  the chat template stored in the GGUF (what llama.cpp, Ollama and LM Studio use); the answers are
  compared with the merged model's. A file is renamed into place only after it answered.

llama.cpp repacks weights for its CPU kernels by default. On a CPU with AMX (Intel Xeons since
Sapphire Rapids), llama-cpp-python 0.3.36's build cannot run DeepSeek-V2 files repacked for AMX: f16,
q8_0 and q4_0 abort with GGML_ASSERT(*cur_backend_id != -1) (MLA multiplies attn_k_b by a permuted q;
the AMX matmul takes only contiguous inputs), and Q4_K weights crash its kernel. A model with the real
DeepSeek-Coder-V2-Lite attention dims hits both; the files run with repacking off. So a run that
llama.cpp kills is tried once more with repacking off (llama.cpp's --no-repack). The record, the card
and the progress say so: a user's llama.cpp on such a CPU needs that flag too.

The converter names a tokenizer's pre-tokenizer by hashing how it splits a test string; a
tokenizer it does not know (a new model, or a tiny test one) stops it. `--gguf-pre NAME` tells it
which llama.cpp pre-tokenizer the tokenizer uses instead; nothing else of the converter changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ...core.errors import ZeldaError
from .. import export_runner as layout
from .generate import emit

# the converter as llama.cpp ships it, its own gguf-py first on the path; argv: converter, pre-tokenizer, its args
BOOT = """
import runpy, sys
from pathlib import Path
converter, pre = sys.argv[1], sys.argv[2]
root = Path(converter).parent
sys.path[:0] = [str(root), str(root / "gguf-py")]
sys.argv = [converter] + sys.argv[3:]
if pre:
    from conversion import base
    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
runpy.run_path(converter, run_name="__main__")
"""
PRE_TOKENIZER_UNKNOWN = "BPE pre-tokenizer was not recognized"


def export(llama_cpp: Path, gguf_pre: str, record: dict[str, Any], out: Path, kind: str, first: str,
           max_new_tokens: int) -> dict[str, Any]:
    """One GGUF file of `kind` (`first` is the 16-bit one the others are quantised from), checked."""
    gdir = out / layout.GGUF
    gdir.mkdir(parents=True, exist_ok=True)
    path = gdir / file_name(record, kind)
    done = (record.get("gguf") or {}).get(kind)
    if done and path.is_file():
        emit("progress", step=f"gguf {kind}: already exported from this merged model: reused")
        return done
    tmp = gdir / f".{path.name}.tmp"
    tmp.unlink(missing_ok=True)  # a killed export's leftover: ours, never complete
    try:
        if kind == first:
            emit("progress", step=f"gguf {kind}: llama.cpp's converter")
            convert(llama_cpp, gguf_pre, out / layout.MERGED, tmp, kind)
        else:
            emit("progress", step=f"gguf {kind}: llama.cpp's quantiser")
            quantize(gdir / file_name(record, first), tmp, kind)
        merged = record["merged"]
        emit("progress", step=f"gguf {kind}: answering {len(merged['prompts'])} prompts with llama.cpp")
        answers, note = chat_answers(tmp, merged["prompts"], max_new_tokens, max(merged.get("prompt_tokens") or [0]))
        if note:
            emit("progress", step=f"gguf {kind}: {note}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    same = sum(a == b for a, b in zip(answers, merged["answers"]))
    prefix = [1.0 if a == b else _common_prefix(a, b) / max(len(a), len(b)) for a, b in zip(answers, merged["answers"])]
    result = {"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path), "answers": answers,
              "same": same, "prompts": len(answers), "prefix_agreement": round(sum(prefix) / max(len(prefix), 1), 4),
              "note": note}
    emit("gguf", type=kind, path=str(path), same=same, prompts=len(answers))
    return result


def file_name(record: dict[str, Any], kind: str) -> str:
    return f"{record['run']}-{record['checkpoint']}-{kind}.gguf"


def convert(llama_cpp: Path, gguf_pre: str, merged: Path, target: Path, kind: str) -> None:
    converter = llama_cpp / layout.CONVERTER
    cmd = [sys.executable, "-c", BOOT, str(converter), gguf_pre, str(merged), "--outfile", str(target), "--outtype", kind]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          encoding="utf-8", errors="replace")
    sys.stderr.write(proc.stdout)  # into export.log
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else f"exit {proc.returncode}")
        hint = (" (if you know which llama.cpp pre-tokenizer this tokenizer uses, pass --gguf-pre NAME)"
                if PRE_TOKENIZER_UNKNOWN in proc.stdout else "")
        raise ZeldaError(f"llama.cpp's converter rejected {merged}: {reason}{hint}")


def quantize(source: Path, target: Path, kind: str) -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{layout.GGUF_TYPES[kind][0]}")
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if code != 0 or not target.is_file():
        raise ZeldaError(f"llama.cpp's quantiser failed to make {kind} from {source.name} (code {code}; see export.log)")


def chat_answers(path: Path, prompts: list[str], max_new_tokens: int, prompt_tokens: int) -> tuple[list[str], str]:
    """Greedy answers of a GGUF file through its own chat template (as llama.cpp-based apps run it), and a note
    when they needed weight repacking off. Runs in a child process: a llama.cpp abort or crash is one line of
    error, not the export's death."""
    request = {"path": str(path), "prompts": prompts, "max_new_tokens": max_new_tokens,
               "n_ctx": prompt_tokens + max_new_tokens + 64}
    proc = _run_child(request)
    note = ""
    if proc.returncode < 0:  # killed by a signal (abort, segfault): llama.cpp itself, not a file it refused to load
        failure = _failure(proc)
        proc = _run_child({**request, "no_repack": True})
        if proc.returncode != 0:
            raise ZeldaError(f"llama.cpp failed running {path.name}: {failure} (and with weight repacking off: "
                             f"{_failure(proc)})")
        note = (f"llama.cpp's default CPU weight repacking failed on the exporting machine ({failure}); it runs with "
                "repacking off (llama.cpp --no-repack, llama-cpp-python use_extra_bufts=False)")
    if proc.returncode != 0:
        raise ZeldaError(f"llama.cpp failed running {path.name}: {_failure(proc)}")
    return list(json.loads(proc.stdout)["answers"]), note


def _run_child(request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(request), capture_output=True, text=True,
                          encoding="utf-8", errors="replace")
    sys.stderr.write(proc.stderr)  # into export.log
    return proc


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    assertion = next((line for line in reversed(lines) if "GGML_ASSERT" in line), "")
    if assertion:
        return re.sub(r"^\S*/", "", assertion)  # ggml-backend.cpp:1294: GGML_ASSERT(...), not the build dir
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode} ({signal.strsignal(-proc.returncode)})"
    return next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else f"exit {proc.returncode}")


def _answer(request: dict[str, Any]) -> list[str]:
    import llama_cpp.llama as bindings
    from llama_cpp import Llama

    if request.get("no_repack"):  # Llama() takes no use_extra_bufts; it reads its model defaults from here
        defaults = bindings.llama_cpp.llama_model_default_params

        def no_repack() -> Any:
            params = defaults()
            params.use_extra_bufts = False
            return params

        bindings.llama_cpp.llama_model_default_params = no_repack
    try:
        llm = Llama(model_path=request["path"], n_ctx=request["n_ctx"], n_threads=os.cpu_count() or 1, seed=0,
                    verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ZeldaError(f"llama.cpp cannot load {Path(request['path']).name}: {exc}") from None
    out = []
    try:
        for prompt in request["prompts"]:
            reply: Any = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], temperature=0.0,
                                                    max_tokens=request["max_new_tokens"])  # not streamed: one dict
            out.append((reply["choices"][0]["message"]["content"] or "").strip())
    finally:
        llm.close()
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


if __name__ == "__main__":  # chat_answers' child: a request as JSON on stdin, {"answers": [...]} on stdout
    try:
        print(json.dumps({"answers": _answer(json.loads(sys.stdin.read()))}))
    except ZeldaError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(1)
