"""What the rest of the app needs from the SSH backend without loading paramiko (~130 ms of
start-up): the settings, a resolved host and the errors a screen catches. `backends.ssh`
re-exports all of it; the session itself lives there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ZeldaError


@dataclass(frozen=True)
class SshSettings:
    config_file: Path = field(default_factory=lambda: Path.home() / ".ssh" / "config")
    known_hosts: Path = field(default_factory=lambda: Path.home() / ".ssh" / "known_hosts")
    connect_timeout_s: float = 15.0
    command_timeout_s: float = 600.0
    keepalive_s: int = 10


@dataclass(frozen=True)
class HostSpec:
    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    proxy_jump: str | None

    @property
    def label(self) -> str:
        return self.alias if self.hostname in self.alias else f"{self.alias} ({self.hostname}:{self.port})"

    @property
    def known_hosts_name(self) -> str:
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


class UnknownHostKey(ZeldaError):
    """The host's key is not in known_hosts: show the fingerprint, connect again only if accepted."""

    def __init__(self, host: HostSpec, key_type: str, fingerprint: str) -> None:
        super().__init__(f"{host.label}: unknown host key {key_type} {fingerprint} — not in {host.known_hosts_name!r} "
                         "of known_hosts; accept it only if it is the box you rented (--accept-new-host-key)")
        self.host, self.key_type, self.fingerprint = host, key_type, fingerprint


class HostKeyChanged(ZeldaError):
    def __init__(self, host: HostSpec, got: str, expected: str, known_hosts: Path) -> None:
        super().__init__(f"{host.label}: HOST KEY CHANGED (now {got}, known_hosts has {expected}) — refusing to connect; "
                         f"if the box was re-provisioned remove the old key: ssh-keygen -f {known_hosts} "
                         f"-R {shlex.quote(host.known_hosts_name)}")


class HostKeyRevoked(ZeldaError):
    def __init__(self, host: HostSpec, got: str, known_hosts: Path) -> None:
        super().__init__(f"{host.label}: host key {got} is marked @revoked in {known_hosts} — refusing to connect")


class RemoteError(ZeldaError):
    """A step on a remote host failed; the message names the host and the step."""


class RemoteMissing(ZeldaError):
    """A path on the box does not exist (SFTP said ENOENT): callers that expect it may be missing catch
    this type (a run's lora_adapters/ before the run ends), never the message's wording."""

    def __init__(self, label: str, path: str) -> None:
        super().__init__(f"{label}: {path} does not exist")
        self.path = path
