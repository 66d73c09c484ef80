"""A real OpenSSH sshd on 127.0.0.1 for the tests: throwaway host and client keys, an
unprivileged port, the current user. It can drop every live session (kill the per-connection
sshd processes) and restart, the ways real connections die."""

from __future__ import annotations

import getpass
import shutil
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from zelda_tui.backends.ssh import SshSettings

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"], check=True, capture_output=True, text=True)
    return out.stdout.split()[1]  # "256 SHA256:... comment (ED25519)"


def _wait_stopped(pid: int, timeout_s: float = 5.0) -> None:
    """Until SIGSTOP has taken effect (a fork under way completes first: its child is then listed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z"):
                return
        time.sleep(0.005)
    raise RuntimeError(f"sshd {pid} did not stop")


@dataclass
class Sshd:
    root: Path
    port: int
    host_fingerprint: str
    proc: subprocess.Popen | None = None

    @classmethod
    def create(cls, root: Path, sftp: str = "internal-sftp") -> "Sshd":
        """sftp: the `Subsystem sftp` command (a hostile box's server, see hostile_sftp.py)."""
        root.mkdir(parents=True, exist_ok=True)
        fp = keygen(root / "host_ed25519")
        keygen(root / "client_key")
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        os.chmod(root / "authorized_keys", 0o600)
        server = cls(root, free_port(), fp)
        (root / "sshd_config").write_text(f"""\
Port {server.port}
ListenAddress 127.0.0.1
HostKey {root}/host_ed25519
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
Subsystem sftp {sftp}
MaxSessions 64
MaxStartups 64
LogLevel ERROR
""")
        user = getpass.getuser()
        (root / "ssh_config").write_text(f"""\
Host gpu-box
    HostName 127.0.0.1
    Port {server.port}
    User {user}
    IdentityFile {root}/client_key

Host jump-box
    HostName 127.0.0.1
    Port {server.port}
    User {user}
    IdentityFile {root}/client_key

Host gpu-via-jump
    HostName 127.0.0.1
    Port {server.port}
    User {user}
    IdentityFile {root}/client_key
    ProxyJump jump-box

Host wrong-user
    HostName 127.0.0.1
    Port {server.port}
    User nobody-here
    IdentityFile {root}/client_key

Host closed-port
    HostName 127.0.0.1
    Port {free_port()}
""")
        return server

    def settings(self, known_hosts: Path | None = None, trusted: bool = True) -> SshSettings:
        """Settings whose known_hosts already holds this server's key (trusted) or not."""
        kh = known_hosts or self.root / ("known_hosts" if trusted else f"known_hosts_empty_{time.monotonic_ns()}")
        if trusted and not kh.exists():
            kh.write_text(f"[127.0.0.1]:{self.port} {(self.root / 'host_ed25519.pub').read_text().rsplit(' ', 1)[0]}\n")
        return SshSettings(config_file=self.root / "ssh_config", known_hosts=kh, connect_timeout_s=5,
                           command_timeout_s=60, keepalive_s=2)

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def session_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def drop_sessions(self) -> int:
        """Kill the per-connection sshd processes: every client sees its connection die."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        """The box dies: no session survives, including one being accepted at this moment (the
        listener is frozen first, so it cannot fork a session between the listing and the kill)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)
            _wait_stopped(self.proc.pid)
            self.drop_sessions()
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A started server for one test module; import this fixture where a test needs a box."""
    if not shutil.which("ssh-keygen") or not os.path.exists(SSHD):
        pytest.fail("openssh-server is not installed: run `bash scripts/system-deps.sh` (or `make test`)")
    server = Sshd.create(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()
