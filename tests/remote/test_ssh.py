"""The SSH layer against a real sshd: host-key policy, ~/.ssh/config, errors that name host and step."""

from __future__ import annotations

import subprocess

import pytest

from zelda_tui.backends.ssh import HostKeyChanged, RemoteError, SshSession, UnknownHostKey

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
