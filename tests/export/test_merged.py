"""`zelda-tui export` on the tiny DeepSeek-V2: the real CLI trains a run, then exports a checkpoint
merged into the bf16 base. Checked here, independently of what the export program says about
itself: the tensor names are the base checkpoint's (per-expert keys), the weights are bf16, and
the saved model's logits equal base + adapter loaded with peft, while the adapter clearly moves
them away from the base."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.backends import export_runner as layout
from zelda_tui.core.train_config import load_run_config

PROMPT = "User: Write a routine that clears $40 bytes at $7E:2000.\n\nAssistant:"


def keys_and_dtypes(folder: Path) -> dict[str, str]:
    from safetensors import safe_open

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            for k in h.keys():
                out[k] = str(h.get_slice(k).get_dtype())
    return out


def logits(model, tokenizer):
    import torch

    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits[0].float()


def test_export_merged_is_base_plus_adapter_in_the_base_layout(trained):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zelda_tui.backends.trainer.lora import load_adapters

    cfg, run_dir = trained
    res = run_cli("export", run_dir.name, "--checkpoint", "2", "--merged", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    view = json.loads(res.stdout)
    assert view["checkpoint"] == "checkpoint-2"
    out = layout.export_dir(run_dir, "checkpoint-2")
    merged = out / layout.MERGED
    assert sorted(p.name for p in out.iterdir()) == sorted([layout.LOG, layout.RECORD, layout.MERGED])  # no temp dir left
    for name in ("config.json", "tokenizer.json", "chat_template.jinja", "README.md", "generation_config.json"):
        assert (merged / name).is_file(), name

    base = Path(load_run_config(run_dir).model.base)
    ours, theirs = keys_and_dtypes(merged), keys_and_dtypes(base)
    assert set(ours) == set(theirs)
    assert "model.layers.1.mlp.experts.0.gate_proj.weight" in ours  # per expert, as the hub has them
    # bf16, but the MoE router, which transformers keeps in float32 (exact: it is the base's, never adapted)
    assert {k for k, v in ours.items() if v != "BF16"} == {"model.layers.1.mlp.gate.weight"}

    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(base).chat_template
    assert tokenizer.eos_token == AutoTokenizer.from_pretrained(base).eos_token
    plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    without = logits(plain, tokenizer)
    with_adapter = logits(load_adapters(plain, str(run_dir / "checkpoints" / "checkpoint-2")), tokenizer)
    exported = logits(AutoModelForCausalLM.from_pretrained(merged, dtype=torch.bfloat16), tokenizer)
    diff = float((exported - with_adapter).abs().max())
    effect = float((with_adapter - without).abs().max())
    assert diff <= 0.02 * float(with_adapter.abs().max())
    assert effect > 10 * diff, (effect, diff)  # a merge that lost the adapter would differ by `effect`

    record = json.loads((out / layout.RECORD).read_text())
    m = record["merged"]
    assert m["ok"] and m["max_abs_diff"] <= m["tolerance"] and m["adapter_effect"] > m["max_abs_diff"]
    assert m["layout"].startswith("same ") and len(m["answers"]) == len(m["prompts"]) > 0
    assert record["step"] == 2 and record["data_sha256"] == load_run_config(run_dir).data.sha256
    card = (merged / "README.md").read_text()
    for text in (str(base), run_dir.name, "checkpoint-2", "tiny_mix", *record["data_sha256"].values(), "transformers"):
        assert text in card, text
    assert "None recorded" in card  # no eval yet

    # the same export again reuses the merged model (same adapter): nothing rewritten
    stamp = (merged / "config.json").stat().st_mtime_ns
    again = run_cli("export", run_dir.name, "--checkpoint", "checkpoint-2", "--config", str(cfg))
    assert again.returncode == 0, again.stderr
    assert "reused" in again.stderr and (merged / "config.json").stat().st_mtime_ns == stamp


def error_line(res) -> str:
    """The one error line (progress lines may come before it), never a traceback."""
    lines = [line for line in res.stderr.splitlines() if line.startswith("zelda-tui: error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_export_bad_input_is_one_line_and_writes_nothing(trained, tmp_path):
    cfg, run_dir = trained
    res = run_cli("export", run_dir.name, "--checkpoint", "7", "--config", str(cfg))
    assert res.returncode == 2
    assert error_line(res) == (f"zelda-tui: error: {run_dir.name} has no complete checkpoint-7 "
                               "(it has: final, checkpoint-2, checkpoint-4)")
    res = run_cli("export", run_dir.name, "--checkpoint", "best", "--config", str(cfg))
    assert res.returncode == 2 and "has no eval scores to pick the best checkpoint" in error_line(res)
    res = run_cli("export", run_dir.name, "--gguf", "q3_x", "--config", str(cfg))
    assert res.returncode == 2 and "--gguf: unknown type 'q3_x' (known: f16, bf16, q8_0" in error_line(res)

    fresh = run_dir.parent / "tiny-zelda_19990101T000000Z"  # a run frozen, never trained
    fresh.mkdir()
    shutil.copy(run_dir / "run.toml", fresh / "run.toml")
    res = run_cli("export", fresh.name, "--config", str(cfg))
    assert res.returncode == 1
    assert error_line(res) == (f"zelda-tui: error: {fresh.name} has no adapters to export (no lora_adapters/, "
                               "no complete checkpoint under checkpoints/)")
    assert not (fresh / layout.EXPORT_DIR).exists() and not (run_dir / layout.EXPORT_DIR / "checkpoint-7").exists()


def test_export_refuses_a_disk_too_small_before_writing(trained):
    """A 64 KB tmpfs over the run's export/ (in a private mount namespace, gone with the process)."""
    cfg, run_dir = trained
    export_root = run_dir / layout.EXPORT_DIR
    export_root.mkdir(exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {export_root}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    def listing() -> list[tuple[str, int]]:  # the real disk under export/ (the GGUF test may have exported 4 already)
        return sorted((str(p.relative_to(export_root)), p.stat().st_size) for p in export_root.rglob("*") if p.is_file())

    before = listing()
    cli = (f"mount -t tmpfs -o size=64k tmpfs {export_root} && exec {sys.executable} -m zelda_tui export "
           f"{run_dir.name} --checkpoint 4 --config {cfg}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", cli], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    line = error_line(res)
    assert line.startswith(f"zelda-tui: error: not enough disk under {export_root / 'checkpoint-4'}: the export needs ")
    assert "(merged bf16 " in line and line.endswith(" free")
    assert listing() == before  # the tmpfs is gone: nothing reached the real disk
