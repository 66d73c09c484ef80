"""The SSH layer against a real sshd: host-key policy, ~/.ssh/config, errors that name host and step."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest

from tests.conftest import run_cli
from zelda_tui.backends.ssh import HostKeyChanged, HostKeyRevoked, RemoteError, SshSession, UnknownHostKey
from zelda_tui.core.errors import ZeldaError

from .sshd import keygen


def test_known_host_connects_and_runs_commands(sshd):
    with SshSession("gpu-box", sshd.settings()) as s:
        assert s.host.hostname == "127.0.0.1" and s.host.port == sshd.port
        res = s.run("echo out; echo err >&2; exit 3")
    assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")


def test_unknown_host_key_shows_fingerprint_and_needs_acceptance(sshd, tmp_path):
    kh = tmp_path / "known_hosts"
    settings = sshd.settings(kh, trusted=False)
    with pytest.raises(UnknownHostKey) as info:
        SshSession("gpu-box", settings).connect()
    assert info.value.fingerprint == sshd.host_fingerprint
    assert sshd.host_fingerprint in str(info.value)
    assert not kh.exists()  # nothing accepted silently
    with pytest.raises(UnknownHostKey):  # accepting some other fingerprint accepts nothing
        SshSession("gpu-box", settings, accept_new_host_key="SHA256:not-the-key").connect()
    assert not kh.exists()
    with SshSession("gpu-box", settings, accept_new_host_key=sshd.host_fingerprint) as s:
        assert s.check("echo hi", "say hi") == "hi\n"
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in kh.read_text()
    with SshSession("gpu-box", settings) as s:  # remembered: no acceptance needed any more
        assert s.run("true").rc == 0
    # OpenSSH itself agrees with what we wrote
    out = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(kh)], capture_output=True, text=True)
    assert out.returncode == 0 and "ssh-ed25519" in out.stdout


def test_changed_host_key_is_refused(sshd, tmp_path):
    other = tmp_path / "other_key"
    keygen(other)
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {(tmp_path / 'other_key.pub').read_text().rsplit(' ', 1)[0]}\n")
    before = kh.read_text()
    for accept in (False, True):
        with pytest.raises(HostKeyChanged) as info:
            SshSession("gpu-box", sshd.settings(kh), accept_new_host_key=accept).connect()
        assert "HOST KEY CHANGED" in str(info.value) and sshd.host_fingerprint in str(info.value)
    assert kh.read_text() == before


def test_failing_command_surfaces_stderr_with_host_and_step(sshd):
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError) as info:
            s.check("ls /definitely/not/here", "list the run dir")
    msg = str(info.value)
    assert "gpu-box" in msg and "list the run dir" in msg and "No such file" in msg


def test_proxyjump_through_a_jump_host(sshd):
    with SshSession("gpu-via-jump", sshd.settings()) as s:
        assert s.host.proxy_jump == "jump-box"
        assert s.check("echo via-jump", "echo") == "via-jump\n"


def test_auth_failure_and_unreachable_host_are_one_clear_line(sshd):
    with pytest.raises(RemoteError, match=r"wrong-user.*authentication failed for user 'nobody-here'"):
        SshSession("wrong-user", sshd.settings()).connect()
    with pytest.raises(RemoteError, match=r"closed-port.*cannot connect"):
        SshSession("closed-port", sshd.settings()).connect()


def test_command_timeout_names_the_command(sshd):
    with SshSession("gpu-box", sshd.settings()) as s:
        with pytest.raises(RemoteError, match="timed out after 0.5 s: sleep 5"):
            s.run("sleep 5", timeout=0.5)


def server_key_line(sshd) -> str:
    return (sshd.root / "host_ed25519.pub").read_text().rsplit(" ", 1)[0]  # "ssh-ed25519 AAAA..."


def test_marker_lines_in_known_hosts_are_understood(sshd, tmp_path):
    """@cert-authority lines are skipped (not a crash); a key marked @revoked is refused even when it is
    also listed as known, and even when the caller would accept a new key (and is never written)."""
    other = tmp_path / "ca_key"
    keygen(other)
    ca = f"@cert-authority *.example.com {(tmp_path / 'ca_key.pub').read_text().rsplit(' ', 1)[0]}\n"
    kh = tmp_path / "known_hosts"
    kh.write_text(ca + f"[127.0.0.1]:{sshd.port} {server_key_line(sshd)}\n")
    with SshSession("gpu-box", sshd.settings(kh)) as s:
        assert s.run("true").rc == 0

    revoked = f"@revoked * {server_key_line(sshd)}\n"
    kh.write_text(ca + revoked + f"[127.0.0.1]:{sshd.port} {server_key_line(sshd)}\n")
    with pytest.raises(HostKeyRevoked, match=re.escape(f"{sshd.host_fingerprint} is marked @revoked in {kh}")):
        SshSession("gpu-box", sshd.settings(kh)).connect()
    kh.write_text(revoked)
    with pytest.raises(HostKeyRevoked):
        SshSession("gpu-box", sshd.settings(kh), accept_new_host_key=True).connect()
    assert kh.read_text() == revoked


def test_accepting_a_key_writes_through_a_symlinked_known_hosts_and_keeps_its_mode(sshd, tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "known_hosts"
    real.write_text("example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
    real.chmod(0o640)
    link = tmp_path / "ssh" / "known_hosts"
    link.parent.mkdir()
    link.symlink_to(real)
    with SshSession("gpu-box", sshd.settings(link, trusted=False), accept_new_host_key=True) as s:
        assert s.run("true").rc == 0
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text().startswith("example.org ssh-ed25519 ") and f"[127.0.0.1]:{sshd.port} ssh-ed25519" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in dotfiles.iterdir()) == ["known_hosts"]  # no temp file left behind

    fresh = tmp_path / "fresh" / "known_hosts"  # a new file is private
    with SshSession("gpu-box", sshd.settings(fresh, trusted=False), accept_new_host_key=True):
        pass
    assert fresh.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("alias, message", [
    ("gpu-box:abc", "host 'gpu-box:abc': port 'abc' is not a number from 1 to 65535"),
    ("root@10.0.0.1:0", "port '0' is not a number from 1 to 65535"),
    ("root@10.0.0.1:70000", "port '70000' is not a number from 1 to 65535"),
])
def test_a_bad_port_in_the_host_is_one_clear_error(sshd, alias, message):
    with pytest.raises(ZeldaError, match=message) as info:
        SshSession(alias, sshd.settings())
    assert info.value.exit_code == 2


def test_a_bad_port_in_the_ssh_config_names_the_file_and_line(sshd, tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host ok\n    HostName 127.0.0.1\n\nHost broken\n    HostName 127.0.0.1\n    Port twenty-two\n")
    settings = dataclasses.replace(sshd.settings(), config_file=cfg)
    with pytest.raises(ZeldaError, match=rf"^{re.escape(str(cfg))}:6: Port 'twenty-two' \(for host 'broken'\) is not a number"):
        SshSession("broken", settings)


def test_a_bad_remote_port_on_the_command_line_is_a_usage_error(small_ws):
    res = run_cli("--config", str(small_ws), "train", "start", "--remote", "gpu-box:abc")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "zelda-tui: error: host 'gpu-box:abc': port 'abc' is not a number from 1 to 65535"
