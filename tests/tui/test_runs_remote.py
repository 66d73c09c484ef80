"""The Runs screen with a remote run (a real sshd on 127.0.0.1): its log arrives through the mirror
and the connection shows in the summary; a new host key is asked about with its fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList, Static

from zelda_tui.widgets.confirm import ConfirmDialog
from zelda_tui.widgets.log_view import LogView

from .pilot_util import settle
from .test_runs_screen import SIZE, select, wait_for


def remote_config(cfg: Path, server, box: Path, known_hosts: Path) -> None:
    with open(cfg, "a") as fh:
        fh.write(f"""
[remote]
training_dir = "{box}"
hosts = ["gpu-box"]
ssh_config = "{server.root / 'ssh_config'}"
known_hosts = "{known_hosts}"
""")


async def test_remote_run_log_comes_through_the_mirror(small_ws: Path, sshd, app_for, tmp_path: Path):
    box = tmp_path / "box"
    remote = box / "models" / "zelda_20260105T000000Z"
    remote.mkdir(parents=True)
    (remote / "train.log").write_text("".join(f"remote line {i}\n" for i in range(25)))
    (remote / "metrics.jsonl").write_text("".join(json.dumps({"t": i, "event": "train", "step": i, "loss": 2.0 - i / 10}) + "\n"
                                                  for i in range(1, 6)))
    (remote / "status.json").write_text(json.dumps({"state": "completed", "pid": 4242, "step": 5, "max_steps": 5}))
    remote_config(small_ws, sshd, box, sshd.settings().known_hosts)
    local = small_ws.parent / "runs" / remote.name
    local.mkdir(parents=True)
    app = app_for(small_ws)
    app.services.store.run_upsert(remote.name, str(local), "gpu-box", "small", 0, 4242, "starting", str(remote))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        await select(pilot, screen, remote.name)
        log = screen.query_one("#runs-log", LogView)
        await wait_for(pilot, lambda: "remote line 24" in "\n".join(log.lines), "the remote log in the pane")
        summary = screen.query_one("#runs-summary", Static)
        await wait_for(pilot, lambda: "gpu-box" in str(summary.render()) and "stopped" in str(summary.render()),
                       "the link state in the summary")
        table = screen.query_one(DataTable)
        await wait_for(pilot, lambda: str(table.get_cell(remote.name, "state")) == "completed", "state from the mirror")
        assert str(table.get_cell(remote.name, "host")) == "gpu-box"
    assert (local / "train.log").read_bytes() == (remote / "train.log").read_bytes()


async def test_new_host_key_is_shown_and_must_be_accepted(small_ws: Path, sshd, app_for, tmp_path: Path):
    kh = tmp_path / "known_hosts"
    remote_config(small_ws, sshd, tmp_path / "box", kh)
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "StartRunDialog", "the start dialog")
        assert "gpu-box" in str(app.screen.query_one(Static).render())  # the known hosts are listed
        app.screen.query_one("#start-host", Input).value = "gpu-box"
        app.screen.query_one(OptionList).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the host key question", timeout=30)
        body = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert sshd.host_fingerprint in body and "gpu-box" in body
        await pilot.press("n")  # not trusted: nothing written, nothing started
        await pilot.pause()
        assert not kh.exists()
        assert not (small_ws.parent / "runs").exists() or not any((small_ws.parent / "runs").iterdir())

        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "StartRunDialog", "the start dialog again")
        app.screen.query_one("#start-host", Input).value = "gpu-box"
        app.screen.query_one(OptionList).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the host key question", timeout=30)
        await pilot.press("y")  # trusted: the key is remembered, then the box is probed (it has no GPU)
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications), "the probe's error", 30)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert any("gpu-box" in e and "check GPU: nvidia-smi finds no GPU" in e for e in errors), errors
        assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in kh.read_text()


async def test_tracked_instances_show_with_their_ssh_endpoint(small_ws: Path, app_for, monkeypatch):
    import time

    from tests.backends.replay_server import ReplayServer, Reply, fixture_json
    from tests.cli.test_offers_cli import KEY, workspace

    monkeypatch.setenv("VAST_API_KEY", KEY)
    iid = str(fixture_json("vast/create_instance.json")["new_contract"])
    with ReplayServer() as server:
        server.route("GET", f"/api/v0/instances/{iid}/", Reply.file("vast/show_instance.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        app = app_for(cfg)
        app.services.store.instance_add({"key": f"vast:{iid}", "provider": "vast", "instance_id": iid, "offer": "vast:1",
                                         "gpu_name": "A100 SXM4", "num_gpus": 1, "dph_total": 0.7,
                                         "started": time.time() - 7200, "ended": None, "state": "starting",
                                         "ssh_host": None, "ssh_port": None})
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            strip = app.screen.query_one("#runs-instances", Static)
            await wait_for(pilot, lambda: "ssh root@ssh2281.vast.ai:10882" in str(strip.render()), "the SSH endpoint")
            text = str(strip.render())
            assert f"vast:{iid}" in text and "running" in text and "$0.70/h" in text and "$1.40 so far" in text
            assert strip.display


async def test_b_backs_up_a_remote_runs_adapters(small_ws: Path, sshd, app_for, tmp_path: Path):
    import json as json_mod
    import shutil

    from tests.remote.test_backup import remote_run

    if not shutil.which("rsync"):
        pytest.fail("rsync is not installed: run `bash scripts/system-deps.sh`")
    box, backup = tmp_path / "box", tmp_path / "backup"
    remote = box / "models" / "zelda_20260106T000000Z"
    (remote / "lora_adapters").mkdir(parents=True)
    (remote / "lora_adapters" / "adapter_model.safetensors").write_bytes(b"\x02" * 1000)
    (remote / "status.json").write_text(json_mod.dumps({"state": "completed", "pid": 1, "step": 3}))
    cfg = remote_run(small_ws, sshd, box, backup)
    local = small_ws.parent / "runs" / remote.name
    local.mkdir(parents=True)
    app = app_for(cfg)
    app.services.store.run_upsert(remote.name, str(local), "gpu-box", "small", 0, 1, "completed", str(remote))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await select(pilot, app.screen, remote.name)
        await pilot.press("b")
        target = backup / remote.name / "lora_adapters" / "adapter_model.safetensors"
        await wait_for(pilot, lambda: any(n.title == "Backed up" for n in app._notifications), "the backup notice", 30)
        assert target.read_bytes() == b"\x02" * 1000


async def test_stop_of_a_remote_run_keeps_the_screen_responsive(small_ws: Path, app_for, tmp_path: Path):
    """The box does not answer (a port that accepts and never speaks SSH): the stop waits for the connect
    timeout on a worker while the screen keeps taking keys, then says why it failed."""
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        ssh_config = tmp_path / "ssh_config"
        ssh_config.write_text(f"Host gpu-box\n  HostName 127.0.0.1\n  Port {silent.getsockname()[1]}\n  User root\n")
        with open(small_ws, "a") as fh:
            fh.write(f'\n[remote]\ntraining_dir = "/opt/training"\nssh_config = "{ssh_config}"\n'
                     f'known_hosts = "{tmp_path / "known_hosts"}"\nconnect_timeout_s = 6\n')
        name = "zelda_20260106T000000Z"
        local = small_ws.parent / "runs" / name
        local.mkdir(parents=True)
        (local / "run.toml").write_text("")  # frozen here when the run was created (its content plays no part)
        (local / "status.json").write_text(json.dumps({"state": "running", "pid": 4242, "step": 1, "max_steps": 9}))
        app = app_for(small_ws)
        app.services.store.run_upsert(name, str(local), "gpu-box", "small", 0, 4242, "running",
                                      f"/opt/training/models/{name}")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("4")  # the run's mirror keeps trying to reach the box: wait for the list, not for idle
            await wait_for(pilot, lambda: getattr(app.screen, "ready", False), "the runs list")
            screen = app.screen
            await select(pilot, screen, name)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "confirm dialog")
            started = time.monotonic()
            await pilot.press("y")
            await pilot.press("question_mark")  # the keys help opens while the stop is still connecting
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "KeysScreen", "keys help", timeout=2)
            assert time.monotonic() - started < 3  # the connect alone takes 6 s
            await pilot.press("escape")
            await wait_for(pilot, lambda: any("stop failed" in f"{n.title} {n.message}" for n in app.notes),
                           "the stop's error", timeout=20)
            note = next(n for n in app.notes if "stop failed" in f"{n.title} {n.message}")
            assert "gpu-box" in note.message and "cannot connect" in note.message
    finally:
        silent.close()


async def test_g_fetches_the_adapters_alone_when_the_box_has_no_checkpoint(small_ws: Path, sshd, app_for,
                                                                             tmp_path: Path):
    """`g` asks for the latest checkpoint with the adapters; a run that saved none yet still gets its adapters."""
    from tests.remote.test_backup import remote_run

    box = tmp_path / "box"
    remote = box / "models" / "zelda_20260107T000000Z"
    (remote / "lora_adapters").mkdir(parents=True)
    (remote / "lora_adapters" / "adapter_model.safetensors").write_bytes(b"\x03" * 1000)
    (remote / "status.json").write_text(json.dumps({"state": "completed", "pid": 1, "step": 3}))
    cfg = remote_run(small_ws, sshd, box, tmp_path / "backup", backup_table=False)
    local = small_ws.parent / "runs" / remote.name
    local.mkdir(parents=True)
    app = app_for(cfg)
    app.services.store.run_upsert(remote.name, str(local), "gpu-box", "small", 0, 1, "completed", str(remote))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await select(pilot, app.screen, remote.name)
        await pilot.press("g")
        await wait_for(pilot, lambda: any(n.title in ("Fetched", "Error") or "failed" in str(n.message)
                                          for n in app._notifications), "the fetch notice", 30)
        notes = [n for n in app._notifications if n.title == "Fetched"]
        assert notes and "lora_adapters" in str(notes[0].message), [str(n.message) for n in app._notifications]
    assert (local / "lora_adapters" / "adapter_model.safetensors").read_bytes() == b"\x03" * 1000
