"""GGUF made on the box: a remote run of the tiny DeepSeek-V2 (the loopback sshd, whose python is
the test venv's, with llama-cpp-python) is merged and converted there with llama.cpp's converter
uploaded from here; only the GGUF type asked (and export.json) comes home, and it runs here."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.trainer.test_remote_eval import finished, start_remote
from tests.trainer.test_remote_train import remote_workspace
from zelda_tui.backends import export_runner as layout

pytestmark = pytest.mark.skipif(layout.find_llama_cpp() is None or find_spec("llama_cpp") is None,
                                reason="llama.cpp not built here (make llama-cpp)")


def test_gguf_is_made_on_the_box_and_only_the_type_asked_comes_home(tmp_path: Path, tiny_v2: Path, sshd):
    from llama_cpp import Llama

    cfg = remote_workspace(tmp_path / "ws", tiny_v2, sshd, max_steps=1, every=1)
    name, remote = start_remote(cfg)
    finished(remote)
    local = tmp_path / "ws" / "runs" / name

    res = run_cli("export", name, "--checkpoint", "final", "--gguf", "q4_k_m", "--gguf-pre", "gpt-2", "--json",
                  "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    view = json.loads(res.stdout)
    assert "upload llama.cpp's converter" in res.stderr
    file = f"{name}-final-q4_k_m.gguf"
    box_out, here = remote / layout.EXPORT_DIR / "final", layout.export_dir(local, "final")
    # on the box: the merged model, the 16-bit GGUF it was quantised from, and the q4_k_m file
    assert (box_out / layout.MERGED / "config.json").is_file()
    assert sorted(p.name for p in (box_out / layout.GGUF).iterdir()) == [f"{name}-final-bf16.gguf", file]
    # here: only what was asked
    assert view["brought"] == [f"{layout.GGUF}/{file}"]
    assert sorted(p.relative_to(here).as_posix() for p in here.rglob("*") if p.is_file()) == sorted(
        [layout.LOG, layout.RECORD, f"{layout.GGUF}/{file}"])
    assert (here / layout.GGUF / file).read_bytes() == (box_out / layout.GGUF / file).read_bytes()
    assert view["gguf"]["q4_k_m"]["prompts"] == len(view["merged"]["answers"])
    # the converter ran from a copy uploaded into the box's tools dir
    assert list((tmp_path / "ws" / "box" / "tools").glob(f"llama.cpp-*/{layout.CONVERTER}"))

    llm = Llama(model_path=str(here / layout.GGUF / file), n_ctx=128, verbose=False)
    try:
        assert llm.metadata["general.architecture"] == "deepseek2"
    finally:
        llm.close()
