"""Uploads and downloads over a real sshd: sha256-verified, resumable, unchanged files skipped; and
the box probe's refusals (no python, no room) named by host and step."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from zelda_tui.backends import box_files, remote_runs
from zelda_tui.backends.ssh import RemoteError, SshSession
from zelda_tui.backends.ssh_base import RemoteMissing


def blob(path: Path, n: int, seed: int = 1) -> Path:
    path.write_bytes(hashlib.sha256(str(seed).encode()).digest() * (n // 32) + os.urandom(n % 32))
    return path


def quiet(_: str) -> None:
    pass


def test_upload_skips_equal_files_and_resumes_a_partial_one(sshd, tmp_path: Path):
    src = blob(tmp_path / "train.jsonl", 3_000_000)
    small = blob(tmp_path / "meta.json", 1000, seed=2)
    box = tmp_path / "box"
    items = [box_files.transfer(src, f"{box}/ds/train.jsonl"), box_files.transfer(small, f"{box}/ds/meta.json")]
    with SshSession("gpu-box", sshd.settings()) as s:
        assert box_files.upload(s, items, "upload mix", quiet) == 3_001_000
        assert (box / "ds" / "train.jsonl").read_bytes() == src.read_bytes()
        assert box_files.upload(s, items, "upload mix", quiet) == 0  # sha256 equal: nothing sent
        # an interrupted upload left 1 MB in a .part file: only the rest is sent
        (box / "ds" / "train.jsonl").unlink()
        (box / "ds" / "train.jsonl.part").write_bytes(src.read_bytes()[:1_000_000])
        said: list[str] = []
        assert box_files.upload(s, items, "upload mix", said.append) == 2_000_000
        assert any("resuming at 1.0 MB" in line for line in said)
        assert (box / "ds" / "train.jsonl").read_bytes() == src.read_bytes()
        assert not (box / "ds" / "train.jsonl.part").exists()
        # a .part with wrong bytes is caught by the sha256 check, removed, and the next try succeeds
        (box / "ds" / "train.jsonl").unlink()
        (box / "ds" / "train.jsonl.part").write_bytes(b"garbage" * 1000)
        with pytest.raises(RemoteError, match="arrived corrupted"):
            box_files.upload(s, items, "upload mix", quiet)
        assert box_files.upload(s, items, "upload mix", quiet) == 3_000_000
        assert (box / "ds" / "train.jsonl").read_bytes() == src.read_bytes()


def test_download_tree_verifies_resumes_and_skips(sshd, tmp_path: Path):
    box = tmp_path / "box" / "lora_adapters"
    (box / "sub").mkdir(parents=True)
    a = blob(box / "adapter_model.safetensors", 2_500_000)
    b = blob(box / "sub" / "tokenizer.json", 5000, seed=3)
    (box / "leftover.part").write_text("never fetched")
    (box / ".zelda-upload-1f2e.part").mkdir()  # an upload's staging dir: nothing in it is in place yet
    (box / ".zelda-upload-1f2e.part" / "0").write_text("never fetched")
    local = tmp_path / "home" / "lora_adapters"
    with SshSession("gpu-box", sshd.settings()) as s:
        assert box_files.download_tree(s, str(box), local, "fetch", quiet) == 2_505_000
        assert (local / "adapter_model.safetensors").read_bytes() == a.read_bytes()
        assert (local / "sub" / "tokenizer.json").read_bytes() == b.read_bytes()
        assert not (local / "leftover.part").exists()
        assert not (local / ".zelda-upload-1f2e.part").exists()
        assert box_files.download_tree(s, str(box), local, "fetch", quiet) == 0
        (local / "adapter_model.safetensors").unlink()
        (local / "adapter_model.safetensors.part").write_bytes(a.read_bytes()[:2_000_000])
        assert box_files.download_tree(s, str(box), local, "fetch", quiet) == 500_000
        assert (local / "adapter_model.safetensors").read_bytes() == a.read_bytes()
        with pytest.raises(RemoteMissing, match=r"gpu-box.*/box/nope does not exist$") as missing:
            box_files.download_tree(s, str(tmp_path / "box" / "nope"), local, "fetch", quiet)
        assert missing.value.path == str(tmp_path / "box" / "nope")  # a type the caller catches, not a wording


def test_probe_refusals_name_host_and_step(sshd, tmp_path: Path):
    settings = remote_runs.RemoteSettings(training_dir=str(tmp_path / "box"), python=str(tmp_path / "no-python"))
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError, match=r"gpu-box.*check free disk: .* GB free .* needs 1000000000.00 GB"):
            remote_runs.probe(s, settings, "cpu", 10**18, quiet)
        with pytest.raises(RemoteError, match=r"gpu-box.*check python: .*no-python cannot import the trainer stack"):
            remote_runs.probe(s, settings, "cpu", 1000, quiet)
        with pytest.raises(RemoteError, match=r"gpu-box.*check GPU: nvidia-smi finds no GPU"):
            remote_runs.probe(s, settings, "auto", 1000, quiet)


def test_trainer_import_check_reports_the_missing_module(sshd, tmp_path: Path):
    import sys

    bare = str(Path(sys.base_prefix) / "bin" / "python3")  # the interpreter without this venv's packages
    settings = remote_runs.RemoteSettings(training_dir=str(tmp_path / "box"))
    app, code = box_files.code_transfers(settings)
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError, match=r"gpu-box.*check python: .* cannot import the trainer: .*No module named 'zelda_tui'"):
            remote_runs.check_trainer_imports(s, bare, str(tmp_path))
        box_files.upload(s, code, "upload the trainer code", quiet)
        with pytest.raises(RemoteError, match=r"cannot import the trainer: .*No module named '(?!zelda_tui)"):
            remote_runs.check_trainer_imports(s, bare, app)  # the code is there now; its dependencies are not
        remote_runs.check_trainer_imports(s, sys.executable, app)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MB tmpfs as the box's training dir (needs mount rights: root in a container has them)."""
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_mid_upload_is_named_and_resumes(sshd, tmp_path: Path, small_disk: Path):
    src = blob(tmp_path / "train.jsonl", 3_000_000)
    filler = small_disk / "other-run.bin"
    filler.write_bytes(b"\0" * 2_000_000)
    items = [box_files.transfer(src, f"{small_disk}/datasets/m/train.jsonl")]
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError) as info:
            box_files.upload(s, items, "upload mix m", quiet)
        msg = str(info.value)
        assert "gpu-box" in msg and "upload mix m" in msg and "the remote disk is full" in msg and "resume" in msg
        part = small_disk / "datasets" / "m" / "train.jsonl.part"
        kept = part.stat().st_size
        assert 0 < kept < 3_000_000  # what arrived stays
        filler.unlink()  # room again
        said: list[str] = []
        assert box_files.upload(s, items, "upload mix m", said.append) == 3_000_000 - kept
        assert (small_disk / "datasets" / "m" / "train.jsonl").read_bytes() == src.read_bytes()


def test_an_existing_venv_on_the_box_is_reused(sshd, tmp_path: Path):
    import sys

    box = tmp_path / "box"
    (box / "venv" / "bin").mkdir(parents=True)
    python = box / "venv" / "bin" / "python"  # a venv that already has the trainer stack (this one, wrapped)
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    settings = remote_runs.RemoteSettings(training_dir=str(box))  # no remote.python: the box's venv
    said: list[str] = []
    with SshSession("gpu-box", sshd.settings()) as s:
        info = remote_runs.probe(s, settings, "cpu", 1000, said.append)
    assert info.python == str(box / "venv" / "bin" / "python")
    assert not any("creating a venv" in line for line in said)


def test_paths_with_a_backslash_and_a_newline_upload_verify_and_skip(sshd, tmp_path: Path):
    """sha256sum escapes such names in its listing ("\\<digest>  a\\\\b\\nc"): the digests must not depend on it."""
    src = blob(tmp_path / "train.jsonl", 200_000)
    box = tmp_path / "box\\with\nodd name"  # a training_dir with both
    items = [box_files.transfer(src, f"{box}/datasets/m/tr\\ain\n.jsonl")]
    with SshSession("gpu-box", sshd.settings()) as s:
        assert box_files.upload(s, items, "upload mix", quiet) == 200_000
        assert (box / "datasets" / "m" / "tr\\ain\n.jsonl").read_bytes() == src.read_bytes()
        assert box_files.upload(s, items, "upload mix", quiet) == 0  # recognised as already there
        assert box_files.remote_digests(s, [items[0].remote, f"{box}/missing"]) == {items[0].remote: items[0].sha256}


def small_tree(root: Path, n: int = 40, size: int = 20_000) -> Path:
    """n small files in nested dirs (some with a space in the name), like a package's code."""
    for i in range(n):
        d = root / f"pkg{i % 3}" / ("sub dir" if i % 2 else "")
        d.mkdir(parents=True, exist_ok=True)
        blob(d / f"mod_{i}.py", size + i, seed=i)
    return root


def counting_runs(session: SshSession, monkeypatch) -> list[str]:
    """The commands the upload runs on the box (each one is an exec channel: a round trip or more)."""
    commands: list[str] = []
    real = session.run

    def run(command: str, *args, **kwargs):
        commands.append(command)
        return real(command, *args, **kwargs)

    monkeypatch.setattr(session, "run", run)
    return commands


def test_the_code_goes_to_a_fresh_box_in_a_few_commands_and_arrives_whole(sshd, tmp_path: Path, monkeypatch):
    settings = remote_runs.RemoteSettings(training_dir=str(tmp_path / "box"))
    app, code = box_files.code_transfers(settings)
    assert len(code) > 50 and all(t.size < box_files.SMALL_FILE for t in code)
    with SshSession("gpu-box", sshd.settings()) as s:
        commands = counting_runs(s, monkeypatch)
        said: list[str] = []
        assert box_files.upload(s, code, "upload the trainer code", said.append) == sum(t.size for t in code)
        assert len(commands) <= 4, commands  # digests, unpack, verify, move: not one or more per file
        assert s._sftp is None  # no file went file by file over SFTP
        assert said == [f"upload the trainer code: {len(code)} file(s), {sum(t.size for t in code) / 1e6:.1f} MB to send"]
        for t in code:
            assert Path(t.remote).read_bytes() == t.local.read_bytes(), t.remote
        assert not list((tmp_path / "box").rglob("*.part"))  # the staging dir is gone
        commands.clear()
        assert box_files.upload(s, code, "upload the trainer code", quiet) == 0  # all there: nothing sent
        assert len(commands) == 1


def test_small_and_big_files_of_one_upload_each_take_their_way(sshd, tmp_path: Path):
    tree = small_tree(tmp_path / "src", n=12)
    big = blob(tmp_path / "src" / "adapter.safetensors", 2_000_000)
    box = tmp_path / "box"
    _, items = box_files.tree_transfers(tree, tree, str(box), "ckpt")
    assert any(t.local == big for t in items)
    said: list[str] = []
    with SshSession("gpu-box", sshd.settings()) as s:
        assert box_files.upload(s, items, "upload checkpoint", said.append) == sum(t.size for t in items)
    for t in items:
        assert Path(t.remote).read_bytes() == t.local.read_bytes()
    assert [line for line in said if "adapter.safetensors" in line]  # the big one is named (and resumable)
    assert not list(box.rglob("*.part"))


def test_a_file_changed_during_the_upload_puts_nothing_in_place(sshd, tmp_path: Path):
    tree = small_tree(tmp_path / "src")
    box = tmp_path / "box"
    _, items = box_files.tree_transfers(tree, tree, str(box), "app")
    items[-1].local.write_bytes(b"x" * items[-1].size)  # changed after its sha256 was taken: same size, other bytes
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError) as info:
            box_files.upload(s, items, "upload the trainer code", quiet)
    msg = str(info.value)
    assert re.match(r"gpu-box \(127.0.0.1:\d+\): upload the trainer code: ", msg) and "arrived corrupted" in msg and "\n" not in msg
    assert not [t for t in items if Path(t.remote).exists()]  # not even the files that were right
    assert not list(box.rglob("*.part"))


def test_a_transfer_stopped_halfway_puts_nothing_in_place(sshd, tmp_path: Path):
    tree = small_tree(tmp_path / "src")
    box = tmp_path / "box"
    _, items = box_files.tree_transfers(tree, tree, str(box), "app")
    items[len(items) // 2].local.unlink()  # the tree changed under the upload: it stops at that file
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError) as info:
            box_files.upload(s, items, "upload the trainer code", quiet)
    msg = str(info.value)
    assert re.match(r"gpu-box \(127.0.0.1:\d+\): upload the trainer code: ", msg) and "\n" not in msg
    assert str(items[len(items) // 2].local) in msg
    assert not [t for t in items if Path(t.remote).exists()]
    assert not list(box.rglob("*.part"))


def test_a_full_disk_under_a_tree_of_small_files_is_named_and_leaves_nothing(sshd, tmp_path: Path, small_disk: Path):
    tree = small_tree(tmp_path / "src", n=30, size=40_000)  # 1.2 MB in 30 files
    filler = small_disk / "other-run.bin"
    filler.write_bytes(b"\0" * 3_300_000)
    _, items = box_files.tree_transfers(tree, tree, f"{small_disk}/app", "zelda_tui")
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError) as info:
            box_files.upload(s, items, "upload the trainer code", quiet)
        msg = str(info.value)
        assert re.match(r"gpu-box \(127.0.0.1:\d+\): upload the trainer code: the remote disk is full", msg) and "\n" not in msg
        assert not [t for t in items if Path(t.remote).exists()]
        assert not list(small_disk.rglob("*.part"))  # what arrived is gone again: its space is free
        assert filler.read_bytes() == b"\0" * 3_300_000  # what we did not write is untouched
        filler.unlink()  # room again
        assert box_files.upload(s, items, "upload the trainer code", quiet) == sum(t.size for t in items)
    for t in items:
        assert Path(t.remote).read_bytes() == t.local.read_bytes()
