"""The one SSH session type (paramiko) used for every remote step: launch, tail, fetch, backup.

Hosts are named by alias and resolved through `~/.ssh/config` (HostName, User, Port,
IdentityFile, ProxyJump); keys come from IdentityFile, the usual ~/.ssh/id_* files and the
ssh-agent. Host keys are checked against known_hosts: an unknown key raises `UnknownHostKey`
carrying its SHA256 fingerprint, and is only added when the caller accepts it (any new key,
like OpenSSH's accept-new, or exactly the fingerprint a user was shown); a changed key is
always refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import paramiko

from ..core import atomic
from ..core.errors import ZeldaError
from .ssh_base import (  # noqa: F401  re-exported: callers that already hold a session import them from here
    HostKeyChanged,
    HostKeyRevoked,
    HostSpec,
    RemoteError,
    SshSettings,
    UnknownHostKey,
)


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<base64 without padding>."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def resolve(alias: str, settings: SshSettings) -> HostSpec:
    """`user@host:port` or an alias from the ssh config file."""
    user = port = None
    name = alias
    if "@" in name:
        user, name = name.split("@", 1)
    if name.count(":") == 1:
        name, port_text = name.split(":")
        port = _port(port_text)
        if port is None:
            raise ZeldaError(f"host {alias!r}: port {port_text!r} is not a number from 1 to 65535", exit_code=2)
    cfg = paramiko.SSHConfig()
    if settings.config_file.is_file():
        try:
            cfg = paramiko.SSHConfig.from_path(str(settings.config_file))
        except Exception as exc:  # paramiko raises several types for bad files
            raise ZeldaError(f"{settings.config_file}: cannot read ssh config: {exc}") from None
    entry = cfg.lookup(name)
    proxy = entry.get("proxyjump")
    if port is None and "port" in entry:
        port = _port(entry["port"])
        if port is None:
            raise ZeldaError(f"{settings.config_file}{_config_line(settings.config_file, 'port', entry['port'])}: "
                             f"Port {entry['port']!r} (for host {name!r}) is not a number from 1 to 65535", exit_code=2)
    return HostSpec(
        alias=alias,
        hostname=entry.get("hostname", name),
        port=port or 22,
        user=user or entry.get("user") or os.environ.get("USER") or "root",
        identity_files=tuple(os.path.expanduser(p) for p in entry.get("identityfile", [])),
        proxy_jump=None if proxy in (None, "none") else proxy,
    )


def _port(text: str) -> int | None:
    """A TCP port from text, or None when it is not one."""
    text = str(text).strip()
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


def _config_line(path: Path, key: str, value: str) -> str:
    """":N", the line of the ssh config file that sets key to value (for the error), or ""."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for n, line in enumerate(lines, 1):
        words = line.strip().replace("=", " ", 1).split(None, 1)
        if len(words) == 2 and words[0].lower() == key and words[1].strip().strip('"') == value:
            return f":{n}"
    return ""


def load_known_hosts(client: paramiko.SSHClient, path: Path) -> set[tuple[str, str]]:
    """Load known_hosts into the client; returns the (key type, base64) of its @revoked keys.

    paramiko cannot parse marker lines (its InvalidHostKey would escape): @revoked keys are
    collected to be refused, @cert-authority lines are skipped (paramiko cannot check host
    certificates, so such a host shows up as unknown), and lines it cannot read are skipped,
    as OpenSSH does.
    """
    revoked: set[tuple[str, str]] = set()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return revoked
    except OSError as exc:
        raise ZeldaError(f"{path}: cannot read known_hosts: {exc.strerror or exc}") from None
    keys = client.get_host_keys()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            fields = line.split()
            if fields[0] == "@revoked" and len(fields) >= 4:
                revoked.add((fields[2], fields[3]))
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
            entry = None
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return revoked


class _Refuse(paramiko.MissingHostKeyPolicy):
    """Never accept silently: the caller decides, with the fingerprint in hand."""

    def __init__(self, host: HostSpec, accept: bool | str, known_hosts: Path,
                 revoked: set[tuple[str, str]] | None = None) -> None:
        self.host, self.accept, self.known_hosts, self.revoked = host, accept, known_hosts, revoked or set()

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        fp = fingerprint(key)
        if (key.get_name(), key.get_base64()) in self.revoked:
            raise HostKeyRevoked(self.host, fp, self.known_hosts)
        if self.accept is True or (isinstance(self.accept, str) and self.accept == fp):
            client.get_host_keys().add(hostname, key.get_name(), key)
            _append_known_host(self.known_hosts, hostname, key)
            return
        raise UnknownHostKey(self.host, key.get_name(), fp)


_KNOWN_HOSTS_LOCK = threading.Lock()


def _append_known_host(path: Path, hostname: str, key: paramiko.PKey) -> None:
    """Atomically, through a symlinked known_hosts (dotfiles), keeping the file's mode (0600 when new)."""
    with _KNOWN_HOSTS_LOCK:
        target = Path(os.path.realpath(path))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            old = target.read_text(encoding="utf-8")
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            old, mode = "", 0o600
        if old and not old.endswith("\n"):
            old += "\n"
        atomic.write_text(target, old + f"{hostname} {key.get_name()} {key.get_base64()}\n", perms=mode)


class SshSession:
    """One connection to one host; commands, SFTP and forwarded channels share its transport."""

    def __init__(self, alias: str, settings: SshSettings | None = None, accept_new_host_key: bool | str = False) -> None:
        self.settings = settings or SshSettings()
        self.host = resolve(alias, self.settings)
        self.accept = accept_new_host_key
        self._client: paramiko.SSHClient | None = None
        self._jump: SshSession | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # --- connection --------------------------------------------------------------------
    def connect(self) -> "SshSession":
        h, s = self.host, self.settings
        client = paramiko.SSHClient()
        revoked = load_known_hosts(client, s.known_hosts)
        client.set_missing_host_key_policy(_Refuse(h, self.accept, s.known_hosts, revoked))
        sock = None
        if h.proxy_jump:
            self._jump = SshSession(h.proxy_jump.split(",")[0], s, self.accept).connect()
            try:
                sock = self._jump.transport.open_channel("direct-tcpip", (h.hostname, h.port), ("127.0.0.1", 0),
                                                         timeout=s.connect_timeout_s)
            except (paramiko.SSHException, OSError) as exc:
                raise RemoteError(f"{h.label}: cannot reach it through jump host {h.proxy_jump}: {exc}") from None
        try:
            client.connect(
                # paramiko takes one key file or a list of them; its stubs say only `str`
                h.hostname, port=h.port, username=h.user, key_filename=list(h.identity_files) or None,  # type: ignore[arg-type]
                allow_agent=True, look_for_keys=True, timeout=s.connect_timeout_s, banner_timeout=s.connect_timeout_s,
                auth_timeout=s.connect_timeout_s, sock=sock,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyChanged(h, fingerprint(exc.key), fingerprint(exc.expected_key), s.known_hosts) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            keys = ", ".join(h.identity_files) or "~/.ssh/id_*"
            raise RemoteError(f"{h.label}: authentication failed for user {h.user!r} (keys: {keys}, and the agent): "
                              f"{exc}") from None
        except (socket.timeout, TimeoutError):
            client.close()
            raise RemoteError(f"{h.label}: connect timed out after {s.connect_timeout_s:g} s") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:  # EOFError: the server hung up mid-handshake
            client.close()
            if isinstance(exc, ZeldaError):
                raise
            raise RemoteError(f"{h.label}: cannot connect: {_one_line(exc)}") from None
        transport = client.get_transport()
        assert transport is not None  # connect() returned: the transport is up
        key = transport.get_remote_server_key()
        if (key.get_name(), key.get_base64()) in revoked:  # listed both as known and as @revoked: revoked wins
            client.close()
            raise HostKeyRevoked(h, fingerprint(key), s.known_hosts)
        transport.set_keepalive(s.keepalive_s)
        self._client = client
        return self

    @property
    def transport(self) -> paramiko.Transport:
        if self._client is None:
            raise RemoteError(f"{self.host.label}: not connected")
        transport = self._client.get_transport()
        if transport is None:  # closed
            raise RemoteError(f"{self.host.label}: not connected")
        return transport

    def is_alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        for thing in (self._sftp, self._client, self._jump):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead connection may raise anything; it is gone either way
                    pass
        self._sftp = self._client = self._jump = None

    def __enter__(self) -> "SshSession":
        return self if self.is_alive() else self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- commands ----------------------------------------------------------------------
    def run(self, command: str, timeout: float | None = None, stdin: bytes | None = None) -> CommandResult:
        """Run through the login user's shell; stdout and stderr are read concurrently (no pipe deadlock)."""
        timeout = timeout or self.settings.command_timeout_s
        try:
            chan = self.transport.open_session(timeout=self.settings.connect_timeout_s)
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()

            def drain_err() -> None:
                try:
                    while chunk := chan.recv_stderr(65536):
                        err.extend(chunk)
                except (OSError, EOFError, paramiko.SSHException):
                    pass  # the main loop reports the timeout or the lost connection

            reader = threading.Thread(target=drain_err, daemon=True)
            reader.start()
            while chunk := chan.recv(65536):
                out.extend(chunk)
            reader.join(timeout)
            rc = chan.recv_exit_status()
            chan.close()
        except (socket.timeout, TimeoutError):
            chan.close()
            raise RemoteError(f"{self.host.label}: command timed out after {timeout:g} s: {_short(command)}") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise RemoteError(f"{self.host.label}: connection lost running {_short(command)}: {_one_line(exc)}") from None
        return CommandResult(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def check(self, command: str, step: str, timeout: float | None = None) -> str:
        """stdout of a command that must succeed; otherwise an error naming host, step and stderr."""
        res = self.run(command, timeout)
        if res.rc != 0:
            text = res.stderr.strip() or res.stdout.strip() or f"exit status {res.rc}"
            detail = [line for line in text.splitlines() if line.strip() and not line.startswith("[notice]")] or [text]
            raise RemoteError(f"{self.host.label}: {step} failed (exit {res.rc}): {' | '.join(detail[-3:])}")
        return res.stdout

    def read_range(self, path: str, offset: int, length: int, timeout: float | None = None) -> Iterator[bytes]:
        """Bytes [offset, offset+length) of a remote file, streamed over an exec channel.

        paramiko's SFTP reads run at ~5 MB/s; `tail -c +N | head -c L` over a plain channel
        moves ~170 MB/s on loopback (the same cipher), so every bulk read goes this way.
        """
        q = shlex.quote
        chan = None
        try:
            chan = self.transport.open_session(timeout=self.settings.connect_timeout_s)
            chan.settimeout(timeout or self.settings.command_timeout_s)
            chan.exec_command(f"tail -c +{int(offset) + 1} -- {q(path)} | head -c {int(length)}")
            got = 0
            while chunk := chan.recv(1 << 20):
                got += len(chunk)
                yield chunk
            rc = chan.recv_exit_status()
            if rc != 0 or got != length:
                err = chan.recv_stderr(4096).decode("utf-8", "replace").strip()
                raise RemoteError(f"{self.host.label}: reading {path} at {offset}: got {got} of {length} bytes "
                                  f"(exit {rc}{': ' + err if err else ''})")
        except (socket.timeout, TimeoutError):
            raise RemoteError(f"{self.host.label}: reading {path} timed out") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise RemoteError(f"{self.host.label}: connection lost reading {path}: {_one_line(exc)}") from None
        finally:
            if chan is not None:
                chan.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp() if self._client else None
            except (OSError, paramiko.SSHException) as exc:
                raise RemoteError(f"{self.host.label}: cannot open SFTP: {_one_line(exc)}") from None
            if self._sftp is None:
                raise RemoteError(f"{self.host.label}: not connected")
            channel = self._sftp.get_channel()
            if channel is not None:  # always, for an SFTP client opened on a connection
                channel.settimeout(self.settings.command_timeout_s)
        return self._sftp


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _short(command: str, n: int = 80) -> str:
    return command if len(command) <= n else command[: n - 1] + "…"
