"""Mix builds never delete what they did not write, never race, never train on a drifted bundle (issue 12, items 7-9).

Real CLI processes on real temp workspaces: `--out` pointed at the datasets folder or the
workspace, names that would escape mixes/, two builds of one mix at once, a bundle whose
config or datasets changed since it was built.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.baselines import plain_mix_build
from tests.conftest import REPO, run_cli, write_jsonl
from zelda_tui.core import mix as mix_mod
from zelda_tui.core.config import load
from zelda_tui.services import build_services


def cli(cfg: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, "--config", str(cfg), cwd=cwd)


def one_line_error(res: subprocess.CompletedProcess, code: int) -> str:
    assert res.returncode == code, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder but the state database (which any command may create)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("state.sqlite")}


# --- item 7: --overwrite replaces only a bundle we wrote ---------------------------------------
def test_overwrite_never_replaces_the_datasets_folder(small_ws: Path):
    ds = small_ws.parent / "datasets"
    (ds / "notes.txt").write_text("my notes, not a dataset\n")
    before = snapshot(ds)
    line = one_line_error(cli(small_ws, "mix", "build", "small", "--out", str(ds), "--overwrite"), 1)
    assert line.startswith(f"zelda-tui: error: {ds}: not replaced: it is the datasets folder;"), line
    assert snapshot(ds) == before  # every JSONL and notes.txt as they were
    assert [p.name for p in small_ws.parent.iterdir() if p.name.startswith(".")] == []  # no lock, no temp dir


def test_overwrite_never_replaces_a_folder_with_foreign_files(small_ws: Path, tmp_path: Path):
    out = tmp_path / "elsewhere"
    write_jsonl(out / "train.jsonl", [{"instruction": "mine", "output": "keep"}])
    (out / "notes.txt").write_text("keep me")
    before = snapshot(out)
    line = one_line_error(cli(small_ws, "mix", "build", "small", "--out", str(out), "--overwrite"), 1)
    assert "not replaced: it holds files a mix build did not write (notes.txt)" in line
    assert snapshot(out) == before
    (out / "notes.txt").unlink()  # only bundle file names now, but no metadata.json of ours
    line = one_line_error(cli(small_ws, "mix", "build", "small", "--out", str(out), "--overwrite"), 1)
    assert "not replaced: it has no readable metadata.json" in line
    assert (out / "train.jsonl").read_text().startswith('{"instruction": "mine"')


def test_out_dot_is_a_one_line_error_not_a_traceback(small_ws: Path):
    ws = small_ws.parent
    before = snapshot(ws)
    res = run_cli("mix", "build", "small", "--out", ".", "--config", str(small_ws), cwd=ws)
    assert "output directory is not empty" in one_line_error(res, 1)
    res = run_cli("mix", "build", "small", "--out", ".", "--overwrite", "--config", str(small_ws), cwd=ws)
    line = one_line_error(res, 1)
    assert line.startswith(f"zelda-tui: error: {ws}: not replaced: it is the workspace;"), line
    assert snapshot(ws) == before
    res = run_cli("mix", "build", "small", "--out", "/", "--overwrite", "--config", str(small_ws), cwd=ws)
    one_line_error(res, 1)


def test_rebuild_of_our_own_bundle_still_works(small_ws: Path):
    assert cli(small_ws, "mix", "build", "small").returncode == 0
    res = cli(small_ws, "mix", "build", "small", "--overwrite")
    assert res.returncode == 0, res.stderr
    bundle = small_ws.parent / "mixes" / "small"
    assert sorted(p.name for p in bundle.iterdir()) == sorted(mix_mod.BUNDLE_FILES)


@pytest.mark.parametrize(
    "old,new,pattern",
    [
        ("[mix.small]", '[mix."."]', "mix name '.' is not a name"),
        ("[mix.small]", '[mix.".."]', "mix name '..' is not a name"),
        ("[mix.small]", '[mix."../datasets"]', "mix name '../datasets' contains a path separator"),
        ('name = "tiny"', 'name = "a/b"', "model name 'a/b' contains a path separator"),
    ],
)
def test_names_that_escape_mixes_are_refused_before_anything_is_written(small_ws: Path, old: str, new: str, pattern: str):
    small_ws.write_text(small_ws.read_text().replace(old, new))
    ws = small_ws.parent
    before = snapshot(ws)
    name = {"[mix.\".\"]": ".", "[mix.\"..\"]": "..", "[mix.\"../datasets\"]": "../datasets"}.get(new, "small")
    for args in (("mix", "build", name, "--overwrite"), ("mix", "list"), ("config", "check")):
        line = one_line_error(cli(small_ws, *args), 2)
        assert line.startswith(f"zelda-tui: error: {small_ws}:") and pattern in line, line
    assert snapshot(ws) == before


# --- clear errors: unreadable dataset, nothing parses ------------------------------------------
NOBODY = 65534


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root to run the CLI as nobody")
def test_unreadable_dataset_is_named_in_one_line(small_ws: Path, tmp_path: Path):
    ws = tmp_path / "as-nobody"
    shutil.copytree(small_ws.parent, ws / "w", ignore=shutil.ignore_patterns("as-nobody"))
    cfg = ws / "w" / "config.toml"
    for path in [ws, *(ws / "w").rglob("*"), ws / "w"]:
        os.chown(path, NOBODY, NOBODY)
    beta = ws / "w" / "datasets" / "beta.jsonl"
    os.chown(beta, 0, 0)
    os.chmod(beta, 0o600)  # root's, unreadable for nobody: permission denied
    for parent in ws.parents:  # nobody must reach the workspace
        if (parent.stat().st_mode & 0o001) == 0:
            os.chmod(parent, parent.stat().st_mode | 0o001)
    res = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-m",
                          "zelda_tui", "mix", "build", "small", "--config", str(cfg)],
                         capture_output=True, text=True, env={**os.environ, "HOME": str(ws)}, cwd=ws, timeout=120)
    line = one_line_error(res, 1)
    assert f"{beta}: cannot read dataset 'beta' of mix 'small' (Permission denied)" in line, line
    assert not (ws / "w" / "mixes" / "small").exists()


def test_a_mix_where_nothing_parses_builds_nothing(small_ws: Path):
    ds = small_ws.parent / "datasets"
    for name in ("alpha", "beta", "gamma"):
        (ds / f"{name}.jsonl").write_text("not json\n[1, 2]\n'single quotes'\n")
    line = one_line_error(cli(small_ws, "mix", "build", "small"), 1)
    assert "every line of 'alpha' (3 lines), 'beta' (3 lines), 'gamma' (3 lines) failed to parse" in line, line
    assert not (small_ws.parent / "mixes" / "small").exists()
    write_jsonl(ds / "alpha.jsonl", [{"instruction": "ok", "output": "ok"}])  # one dataset fine, two broken
    line = one_line_error(cli(small_ws, "mix", "build", "small"), 1)
    assert "every line of 'beta' (3 lines), 'gamma' (3 lines) failed to parse" in line, line


# --- item 8: one build per output folder at a time ----------------------------------------------
HOLD_BUILD = """
import sys, time
from pathlib import Path
from zelda_tui.core import config, mix
cfg = config.load(sys.argv[1])
started, release = Path(sys.argv[2]), Path(sys.argv[3])
def progress(phase, done, total):
    if phase == "write" and not started.exists():
        started.write_text("x")
        while not release.exists():
            time.sleep(0.02)
mix.build(cfg, cfg.mix("small"), overwrite=True, progress=progress)
"""


def test_second_build_of_one_mix_is_refused_while_the_first_runs(small_ws: Path, tmp_path: Path):
    ws = small_ws.parent
    assert cli(small_ws, "mix", "build", "small").returncode == 0
    stale = Path(tempfile.mkdtemp(prefix=".small.build-", dir=ws / "mixes"))  # what a crashed build leaves
    other = ws / "mixes" / ".small.build-x.build-12345678"  # another output's temp dir: never ours to delete
    other.mkdir()
    started, release = tmp_path / "started", tmp_path / "release"
    first = subprocess.Popen([sys.executable, "-c", HOLD_BUILD, str(small_ws), str(started), str(release)],
                             cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        live = [p for p in (ws / "mixes").iterdir() if p.name.startswith(".small.build-") and p != stale and p != other]
        assert len(live) == 1 and not stale.exists()  # the first build recovered the crashed one's temp dir
        second = cli(small_ws, "mix", "build", "small", "--overwrite")
        line = one_line_error(second, 1)
        assert f"{ws / 'mixes' / 'small'}: being built by PID {first.pid}" in line, line
        assert live[0].is_dir() and other.is_dir()  # the live build's temp dir survived the second one
    finally:
        release.write_text("go")
        assert first.wait(timeout=60) == 0, first.stderr.read()
    cfg = load(small_ws)
    spec = cfg.mix("small")
    expected = plain_mix_build([(n, cfg.dataset(n).path) for n in spec.datasets], spec.seed, spec.eval_fraction,
                               spec.min_eval_samples)
    for name, data in expected.items():
        assert (ws / "mixes" / "small" / name).read_bytes() == data
    assert cli(small_ws, "mix", "build", "small", "--overwrite").returncode == 0  # the lock was released
    assert other.is_dir()


# --- item 9: train start checks the bundle against config.toml ----------------------------------
def _lock(cfg: Path) -> None:
    cfg.write_text(cfg.read_text().replace("seed = 7", 'seed = 7\ndescription = "LOCKED: what v1 trained on"'))


def test_train_start_refuses_a_locked_mix_whose_bundle_drifted(small_ws: Path):
    _lock(small_ws)
    bundle = small_ws.parent / "mixes" / "small"
    with build_services(small_ws) as services:  # built from edits that were never saved (the TUI's old b)
        services.datasets.mix_build(dataclasses.replace(services.config.mix("small"), datasets=("alpha", "beta"), eval_fraction=0.05))
    before = snapshot(bundle)
    line = one_line_error(cli(small_ws, "train", "start", "--mix", "small"), 1)
    assert (f"{bundle}: the bundle of locked mix 'small' does not match config.toml (datasets alpha, beta instead "
            "of alpha, beta, gamma; eval_fraction 0.05 instead of 0.1); not training on it and not rebuilding it") in line
    assert snapshot(bundle) == before and not (small_ws.parent / "runs").exists()


def test_train_start_refuses_a_locked_mix_whose_dataset_changed(small_ws: Path):
    _lock(small_ws)
    assert cli(small_ws, "mix", "build", "small").returncode == 0
    beta = small_ws.parent / "datasets" / "beta.jsonl"
    text = beta.read_text()
    beta.write_text(text.replace("beta task 5", "beta task 6"))  # same size, other content
    line = one_line_error(cli(small_ws, "train", "start", "--mix", "small"), 1)
    assert f"dataset 'beta' changed since the build ({beta})" in line, line
    assert not (small_ws.parent / "runs").exists()


def test_a_drifted_bundle_of_an_unlocked_mix_is_rebuilt_saying_so(small_ws: Path):
    assert cli(small_ws, "mix", "build", "small").returncode == 0
    small_ws.write_text(small_ws.read_text().replace("eval_fraction = 0.1", "eval_fraction = 0.25"))
    said: list[str] = []
    with build_services(small_ws) as services:
        bundle = services.datasets.mix_ensure("small", said.append)
        assert said == ["mix small: the bundle does not match config.toml (eval_fraction 0.1 instead of 0.25): rebuilding it"]
        meta = json.loads((bundle / "metadata.json").read_text())
        assert meta["eval_fraction"] == 0.25 and meta["sources"]["beta"]["bytes"] == (
            small_ws.parent / "datasets" / "beta.jsonl").stat().st_size
        said.clear()
        assert services.datasets.mix_ensure("small", said.append) == bundle and said == []  # matches now: used as is


def test_mix_list_says_which_mixes_are_locked(small_ws: Path):
    small_ws.write_text(small_ws.read_text() + '\n[mix.other]\ndatasets = ["alpha"]\nlocked = true\n')
    _lock(small_ws)
    res = cli(small_ws, "mix", "list", "--json")
    assert res.returncode == 0, res.stderr
    assert {m["name"]: m["locked"] for m in json.loads(res.stdout)} == {"small": True, "other": True}
    small_ws.write_text(small_ws.read_text().replace("locked = true", "locked = false"))
    res = cli(small_ws, "mix", "list")
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in res.stdout.splitlines()[2:])}
    assert rows["small"][5] == "locked" and rows["other"][5] == "", res.stdout
