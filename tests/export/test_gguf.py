"""GGUF export on the tiny DeepSeek-V2 with llama.cpp's own converter and quantiser, each file run
with llama-cpp-python. bf16 and q4_k_m: with llama-cpp-python 0.3.36's CPU build, f16, q8_0 and q4_0
files of the tiny model load but abort at the first token (GGML_ASSERT(*cur_backend_id != -1)). Needs the llama.cpp build (`make llama-cpp`, cached per machine; `make
test` installs it from the cache when there)."""

from __future__ import annotations

import json
from importlib.util import find_spec

import pytest

from tests.conftest import run_cli
from zelda_tui.backends import export_runner as layout

from .test_merged import error_line

pytestmark = pytest.mark.skipif(layout.find_llama_cpp() is None or find_spec("llama_cpp") is None,
                                reason="llama.cpp not built here (make llama-cpp)")


def test_export_gguf_bf16_and_q4_k_m_run_in_llama_cpp(trained):
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    cfg, run_dir = trained
    out = layout.export_dir(run_dir, "checkpoint-4")

    # the tiny model's tokenizer is a BPE trained by the tests: llama.cpp's converter does not know how it
    # pre-tokenizes and says so; no GGUF is left behind, the merged model (complete, verified) stays
    res = run_cli("export", run_dir.name, "--checkpoint", "4", "--gguf", "q4_k_m", "--config", str(cfg))
    assert res.returncode == 1
    line = error_line(res)
    assert line.startswith(f"zelda-tui: error: llama.cpp's converter rejected {out / layout.MERGED}: ")
    assert "BPE pre-tokenizer was not recognized" in line and line.endswith("pass --gguf-pre NAME)")
    assert sorted(p.name for p in (out / layout.GGUF).iterdir()) == []
    assert json.loads((out / layout.RECORD).read_text())["merged"]["ok"]

    # told which pre-tokenizer it is (the GPT-2 split its byte-level BPE uses), the converter goes on
    res = run_cli("export", run_dir.name, "--checkpoint", "4", "--gguf", "q4_k_m,bf16", "--gguf-pre", "gpt-2", "--json",
                  "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "merged model already exported for this adapter: reused" in res.stderr
    view = json.loads(res.stdout)
    assert list(view["gguf"]) == ["bf16", "q4_k_m"]  # the 16-bit file first: q4_k_m is quantised from it
    name = f"{run_dir.name}-checkpoint-4"
    assert sorted(p.name for p in (out / layout.GGUF).iterdir()) == [f"{name}-bf16.gguf", f"{name}-q4_k_m.gguf"]
    bf16, q4 = (out / layout.GGUF / f"{name}-bf16.gguf"), (out / layout.GGUF / f"{name}-q4_k_m.gguf")
    assert q4.stat().st_size < 0.75 * bf16.stat().st_size

    merged_answers = view["merged"]["answers"]
    for kind in ("bf16", "q4_k_m"):
        g = view["gguf"][kind]
        assert g["prompts"] == len(merged_answers) == len(g["answers"])
        assert all(isinstance(a, str) for a in g["answers"])
    # bf16 of a bf16 model: the same greedy answers as transformers (the tiny model's are noise, so ties may flip one)
    assert view["gguf"]["bf16"]["same"] >= len(merged_answers) - 1, (view["gguf"]["bf16"]["answers"], merged_answers)

    tokenizer = AutoTokenizer.from_pretrained(out / layout.MERGED)
    llm = Llama(model_path=str(q4), n_ctx=256, verbose=False)
    try:
        meta = llm.metadata
        assert meta["general.architecture"] == "deepseek2"
        assert meta["tokenizer.chat_template"] == tokenizer.chat_template  # the chat template survived
        assert int(meta["tokenizer.ggml.eos_token_id"]) == tokenizer.eos_token_id
        assert llm.token_eos() == tokenizer.eos_token_id
    finally:
        llm.close()

    card = (out / layout.MERGED / "README.md").read_text()
    assert f"GGUF bf16 (`{name}-bf16.gguf`" in card and f"GGUF q4_k_m (`{name}-q4_k_m.gguf`" in card
    assert "llama-cpp-python" in card
