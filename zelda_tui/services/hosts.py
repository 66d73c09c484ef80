"""The hosts runs live on, built from `[remote]`: this machine, or a GPU box over SSH.

`Hosts.for_run` is the one place that decides where a run lives (DESIGN: run lifecycle);
every service after that asks the `RunHost` it got.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from ..backends import remote_runs
from ..backends.hosts import LocalHost, RunHost, SshHost
from ..backends.ssh_base import HostSpec, SshSettings
from ..core.config import Config

if TYPE_CHECKING:  # paramiko loads when a remote step runs, not at app start
    from ..backends.ssh import SshSession


def _train_requirements(extra_only: bool = False) -> tuple[str, ...]:
    """What a venv on the box needs to run the uploaded code: the base requirements and the
    [train] extra's ranges (the same versions this install asks for); `extra_only`: the [train]
    extra alone (what a python the user names must bring: the trainer's own imports are checked
    after the upload, and it needs none of the UI's packages)."""
    try:
        reqs = metadata.requires("zelda-tui") or []
    except metadata.PackageNotFoundError:
        return ()
    out = []
    for req in reqs:
        spec, _, marker = req.partition(";")
        train = bool(re.search(r"extra\s*==\s*['\"]train['\"]", marker))
        if train or (not marker.strip() and not extra_only):
            out.append(spec.strip())
    return tuple(out)


@dataclass
class Hosts:
    """Makes the `RunHost` of a run, with the SSH and box settings of config.toml."""

    config: Config

    def ssh_settings(self) -> SshSettings:
        d, r = SshSettings(), self.config.remote  # [remote], checked at load; None: SshSettings' default
        return SshSettings(config_file=r.ssh_config or d.config_file, known_hosts=r.known_hosts or d.known_hosts,
                           connect_timeout_s=r.connect_timeout_s or d.connect_timeout_s,
                           command_timeout_s=d.command_timeout_s, keepalive_s=d.keepalive_s)

    def remote_settings(self) -> remote_runs.RemoteSettings:
        r = self.config.remote
        return remote_runs.RemoteSettings(training_dir=r.training_dir or remote_runs.RemoteSettings.training_dir,
                                          python=r.python,
                                          disk_warning_percent=self.config.monitoring.disk_warning_percent,
                                          nvidia_smi=self.config.monitoring.nvidia_smi,
                                          train_requirements=_train_requirements(),
                                          trainer_stack=_train_requirements(extra_only=True))

    def configured(self) -> list[str]:
        """`[remote] hosts`: the SSH aliases a run may go to."""
        return list(self.config.remote.hosts)

    def local(self) -> LocalHost:
        return LocalHost()

    def ssh(self, name: str, remote_dir: str | None = None) -> SshHost:
        return SshHost(name, remote_dir, self.ssh_settings, self.remote_settings)

    @staticmethod
    def is_remote(host: str | None, remote_dir: str | None) -> bool:
        """The one rule for where a run lives, from its index (SQLite row or `.remote` marker): a host
        other than "local" with a dir on the box is a GPU box; anything else is this machine."""
        return bool(host and host != "local" and remote_dir)

    def for_run(self, host: str | None, remote_dir: str | None) -> RunHost:
        if host and remote_dir and self.is_remote(host, remote_dir):
            return self.ssh(host, remote_dir)
        return self.local()

    def resolve(self, name: str) -> HostSpec:
        """The SSH endpoint of an alias or user@host:port (a usage error when it names none)."""
        from ..backends.ssh import resolve

        return resolve(name, self.ssh_settings())

    def connect(self, name: str, accept_new_host_key: bool | str = False) -> SshSession:
        return self.ssh(name).connect(accept_new_host_key)
