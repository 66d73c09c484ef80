"""GGUF export on the tiny DeepSeek-V2 with llama.cpp's own converter and quantiser, each file run
with llama-cpp-python: f16, q8_0 and q4_k_m. On a CPU with AMX (Intel Xeons since Sapphire Rapids),
llama-cpp-python 0.3.36's default weight repacking aborts on DeepSeek-V2's f16 and q8_0 files
(GGML_ASSERT(*cur_backend_id != -1)), real dims too (see gguf.py). The export then runs them with
repacking off and says so. Needs the llama.cpp build (`make llama-cpp`, cached per machine; `make
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


def test_export_gguf_f16_q8_0_and_q4_k_m_run_in_llama_cpp(trained):
    import llama_cpp
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    cfg, run_dir = trained
    out = layout.export_dir(run_dir, "checkpoint-4")

    # the tiny model's tokenizer is a BPE trained by the tests: llama.cpp's converter does not know how it
    # pre-tokenizes and says so; no GGUF is left behind, the merged model (complete, verified) stays
    res = run_cli("export", run_dir.name, "--checkpoint", "4", "--gguf", "q8_0", "--config", str(cfg))
    assert res.returncode == 1
    line = error_line(res)
    assert line.startswith(f"zelda-tui: error: llama.cpp's converter rejected {out / layout.MERGED}: ")
    assert "BPE pre-tokenizer was not recognized" in line and line.endswith("pass --gguf-pre NAME)")
    assert sorted(p.name for p in (out / layout.GGUF).iterdir()) == []
    assert json.loads((out / layout.RECORD).read_text())["merged"]["ok"]

    # told which pre-tokenizer it is (the GPT-2 split its byte-level BPE uses), the converter goes on
    res = run_cli("export", run_dir.name, "--checkpoint", "4", "--gguf", "q8_0,f16,q4_k_m", "--gguf-pre", "gpt-2",
                  "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "merged model already exported for this adapter: reused" in res.stderr
    view = json.loads(res.stdout)
    assert list(view["gguf"]) == ["f16", "q8_0", "q4_k_m"]  # the 16-bit file first: the others are quantised from it
    name = f"{run_dir.name}-checkpoint-4"
    files = {kind: out / layout.GGUF / f"{name}-{kind}.gguf" for kind in ("f16", "q8_0", "q4_k_m")}
    assert sorted(p.name for p in (out / layout.GGUF).iterdir()) == sorted(f.name for f in files.values())
    assert files["q4_k_m"].stat().st_size < files["q8_0"].stat().st_size < 0.75 * files["f16"].stat().st_size

    merged_answers = view["merged"]["answers"]
    for kind in files:
        g = view["gguf"][kind]
        assert g["prompts"] == len(merged_answers) == len(g["answers"])
        assert all(isinstance(a, str) for a in g["answers"])
    # f16 of a bf16 model: the same greedy answers as transformers (the tiny model's are noise, so ties may flip one)
    assert view["gguf"]["f16"]["same"] >= len(merged_answers) - 1, (view["gguf"]["f16"]["answers"], merged_answers)

    # where llama.cpp uses AMX, its repacked f16/q8_0 DeepSeek-V2 weights abort: the files ran with repacking off,
    # and the record, the card and the progress say so (the tiny q4_k_m falls back to q5_0/q8_0 rows AMX does not take)
    amx = "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode()
    card = (out / layout.MERGED / "README.md").read_text()
    for kind in ("f16", "q8_0"):
        note = view["gguf"][kind]["note"]
        assert bool(note) == amx, note
        if amx:
            assert "GGML_ASSERT(*cur_backend_id != -1)" in note and "llama.cpp --no-repack" in note
            assert f"GGUF {kind} (`{name}-{kind}.gguf`" in card and note in card
            assert f"gguf {kind}: {note}" in res.stderr

    tokenizer = AutoTokenizer.from_pretrained(out / layout.MERGED)
    llm = Llama(model_path=str(files["q4_k_m"]), n_ctx=256, verbose=False)
    try:
        meta = llm.metadata
        assert meta["general.architecture"] == "deepseek2"
        assert meta["tokenizer.chat_template"] == tokenizer.chat_template  # the chat template survived
        assert int(meta["tokenizer.ggml.eos_token_id"]) == tokenizer.eos_token_id
        assert llm.token_eos() == tokenizer.eos_token_id
    finally:
        llm.close()

    assert all(f"GGUF {kind} (`{name}-{kind}.gguf`" in card for kind in files)
    assert "llama-cpp-python" in card
