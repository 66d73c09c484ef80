"""The headless CLI, run as a user runs it (a subprocess), exit codes 0/1/2 and --json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_inventory_json_and_markdown(small_ws: Path):
    res = run_cli("--no-ui", "inventory", "--json", "--config", str(small_ws))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [d["name"] for d in data] == ["alpha", "beta", "gamma"]
    assert [d["qa"]["records"] for d in data] == [40, 12, 1]
    assert (small_ws.parent / "state.sqlite").exists()
    md = run_cli("inventory", cwd=small_ws.parent)  # ./config.toml, no --no-ui needed
    assert md.returncode == 0, md.stderr
    assert "| alpha" in md.stdout and "40" in md.stdout


def test_config_from_environment(small_ws: Path, tmp_path: Path):
    res = run_cli("mix", "list", "--json", cwd=tmp_path, env={"ZELDA_TUI_CONFIG": str(small_ws)})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["name"] == "small"


def test_qa_markdown_names_problem_lines(small_ws: Path):
    bad = small_ws.parent / "datasets" / "beta.jsonl"
    bad.write_text(bad.read_text() + "{not json\n" + '{"instruction": "x", "output": 5, "domain": null}\n')
    res = run_cli("qa", "beta", "--config", str(small_ws))
    assert res.returncode == 0, res.stderr
    assert "parse errors: 1 (lines 13)" in res.stdout
    assert "wrong type in `output`: 1 (lines 14)" in res.stdout
    assert "wrong type in `domain`: 1 (lines 14)" in res.stdout
    assert "estimate (3.2 chars/token)" in res.stdout


def test_qa_unknown_dataset_is_usage_error(small_ws: Path):
    res = run_cli("qa", "nope", "--config", str(small_ws))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "unknown dataset 'nope'" in res.stderr


def test_mix_preview_build_and_refusal(small_ws: Path):
    prev = run_cli("mix", "preview", "small", "--json", "--config", str(small_ws))
    assert prev.returncode == 0, prev.stderr
    plan = json.loads(prev.stdout)
    assert (plan["total_train"], plan["total_eval"]) == (47, 6)
    assert not (small_ws.parent / "mixes").exists()

    built = run_cli("mix", "build", "small", "--json", "--config", str(small_ws))
    assert built.returncode == 0, built.stderr
    built_json = json.loads(built.stdout)
    assert list(built_json) == ["out", "metadata"] and list(built_json["metadata"]) == [
        "name", "created_at", "seed", "eval_fraction", "min_eval_samples", "datasets_root", "datasets", "total_train",
        "total_eval", "total_records", "parse_errors_total", "outputs", "notes", "sha256", "sources"]
    out = Path(built_json["out"])
    assert built_json["metadata"] == json.loads((out / "metadata.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["eval.jsonl", "eval_sources.txt", "metadata.json", "train.jsonl", "val.jsonl"]
    before = (out / "train.jsonl").read_bytes()

    again = run_cli("mix", "build", "small", "--config", str(small_ws))
    assert again.returncode == 1
    assert "not empty" in again.stderr and "--overwrite" in again.stderr
    assert (out / "train.jsonl").read_bytes() == before

    forced = run_cli("mix", "build", "small", "--overwrite", "--config", str(small_ws))
    assert forced.returncode == 0, forced.stderr
    assert "train 47, eval 6" in forced.stdout


def test_missing_dataset_file_fails_with_name(small_ws: Path):
    (small_ws.parent / "datasets" / "gamma.jsonl").unlink()
    res = run_cli("mix", "build", "small", "--config", str(small_ws))
    assert res.returncode == 1
    assert "dataset 'gamma' file not found" in res.stderr
    inv = run_cli("inventory", "--config", str(small_ws))
    assert inv.returncode == 1 and "gamma.jsonl: file not found" in inv.stdout


def test_bad_config_is_one_line_exit_2(small_ws: Path):
    small_ws.write_text(small_ws.read_text().replace("eval_fraction = 0.1", "eval_fraction = 2"))
    res = run_cli("inventory", "--config", str(small_ws))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert f"{small_ws}:23 [mix.small.eval_fraction]" in res.stderr


def test_usage_errors_exit_2(small_ws: Path):
    assert run_cli("--no-ui").returncode == 2
    assert run_cli("mix", "frobnicate").returncode == 2
    assert run_cli("nonsense").returncode == 2
    missing = run_cli("inventory", "--config", str(small_ws.parent / "nope.toml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_registry_index_exports_json(small_ws: Path):
    res = run_cli("registry", "index", "--json", "--config", str(small_ws))
    assert res.returncode == 0, res.stderr
    export = json.loads((small_ws.parent / "datasets_registry.json").read_text())
    rows = {d["name"]: d for d in export["datasets"]}
    import hashlib
    alpha = small_ws.parent / "datasets" / "alpha.jsonl"
    assert rows["alpha"]["sha256"] == hashlib.sha256(alpha.read_bytes()).hexdigest()
    assert rows["alpha"]["records"] == 40 and rows["alpha"]["bytes"] == alpha.stat().st_size
    assert rows["alpha"]["tags"] == ["a"]
    assert set(rows["beta"]) >= {"name", "path", "records", "bytes", "sha256", "mtime", "tags"}


def test_demo_init_refuses_non_empty_dir(tmp_path: Path):
    target = tmp_path / "ws"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    res = run_cli("demo", "init", str(target))
    assert res.returncode == 1 and "not empty" in res.stderr
    assert (target / "mine.txt").read_text() == "keep"


def test_config_check(small_ws: Path):
    res = run_cli("config", "check", "--config", str(small_ws))
    assert res.returncode == 0 and "3 datasets, 1 mixes" in res.stdout


def test_kill_9_during_build_keeps_previous_bundle(demo_ws: Path):
    """SIGKILL the real CLI while it writes the new bundle: the old one must survive intact."""
    import os
    import signal
    import subprocess
    import sys
    import time

    first = run_cli("mix", "build", "zelda_phase1_core", "--config", str(demo_ws))
    assert first.returncode == 0, first.stderr
    bundle = demo_ws.parent / "mixes" / "zelda_phase1_core"
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    killed = False
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "zelda_tui", "mix", "build", "zelda_phase1_core", "--overwrite", "--config", str(demo_ws)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None and not list(bundle.parent.glob(".zelda_phase1_core.build-*")):
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed = proc.wait() == -signal.SIGKILL
        else:
            proc.wait()
        if killed:
            break
    assert killed, "the build always finished before it could be killed"
    after = {p.name: p.read_bytes() for p in bundle.iterdir()} if bundle.exists() else {}
    if not after:  # killed between the two renames: the next command restores it
        run_cli("mix", "build", "zelda_phase1_core", "--config", str(demo_ws))
        after = {p.name: p.read_bytes() for p in bundle.iterdir()}
    assert after == before
    # and a normal rebuild afterwards works and cleans up the leftovers
    again = run_cli("mix", "build", "zelda_phase1_core", "--overwrite", "--config", str(demo_ws))
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in bundle.parent.iterdir()) == [".zelda_phase1_core.lock", "zelda_phase1_core"]  # + the build lock
    assert (bundle / "train.jsonl").read_bytes() == before["train.jsonl"]


def test_a_reader_closing_stdout_early_ends_quietly(small_ws: Path):
    """`zelda-tui qa | head -1`: output several times the pipe's size, one line read, then the pipe
    closed: the rest of the write fails with EPIPE, which must end the command without a traceback."""
    import fcntl
    import os
    import subprocess
    import sys

    with open(small_ws, "a", encoding="utf-8") as fh:  # 30 more datasets: ~26 KB of QA report
        fh.writelines(f'\n[datasets.copy{i}]\npath = "alpha.jsonl"\n' for i in range(30))
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)  # the writer blocks on the full pipe until the reader goes
    proc = subprocess.Popen([sys.executable, "-m", "zelda_tui", "qa", "--config", str(small_ws)],
                            stdout=write_fd, stderr=subprocess.PIPE, text=True)
    os.close(write_fd)
    first = b""
    while not first.endswith(b"\n"):  # byte by byte, as head does: the rest stays in the pipe
        first += os.read(read_fd, 1)
    os.close(read_fd)
    _, err = proc.communicate(timeout=120)
    assert first.startswith(b"# Dataset QA")
    assert err == "" and proc.returncode == 141


def test_unknown_names_exit_2_and_json_errors_are_objects(small_ws: Path):
    for args, text in ((("train", "status", "nope"), "no run 'nope'"), (("tail", "nope"), "no run 'nope'"),
                       (("qa", "nope"), "unknown dataset 'nope'"), (("mix", "preview", "nope"), "unknown mix 'nope'"),
                       (("estimate", "--gpu", "V100", "--mix", "small", "--model", "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"),
                        "no figures for GPU 'V100'")):
        res = run_cli(*args, "--config", str(small_ws))
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and text in res.stderr, (args, res.stderr)
        as_json = run_cli(*args, "--json", "--config", str(small_ws))
        assert as_json.returncode == 2 and as_json.stdout == ""
        err = json.loads(as_json.stderr)
        assert text in err["error"] and set(err) == {"error", "file", "line", "key"}

    small_ws.write_text(small_ws.read_text().replace("eval_fraction = 0.1", "eval_fraction = 2"))
    bad = run_cli("inventory", "--json", "--config", str(small_ws))
    assert bad.returncode == 2
    assert json.loads(bad.stderr) == {"error": json.loads(bad.stderr)["error"], "file": str(small_ws), "line": 23,
                                      "key": "mix.small.eval_fraction"}
    usage = run_cli("mix", "preview", "--json")  # argparse's own errors too
    assert usage.returncode == 2 and "required: name" in json.loads(usage.stderr)["error"]
