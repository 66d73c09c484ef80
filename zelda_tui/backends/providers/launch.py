"""Rent, inspect and destroy a machine for an offer key (`provider:id`), whatever the provider.

Keys come from the environment; `describe_launch` is the dry run (the exact request with the key
redacted). GCP is browse-only for now: launching there is refused with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ZeldaError
from . import vast, vultr
from .http import InstanceInfo
from .vast import VastClient
from .vultr import VultrClient, split_offer_id


@dataclass(frozen=True)
class LaunchSpec:
    image: str = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-devel"  # vast: the container image
    disk_gb: int = 200
    label: str = "zelda-tui"
    onstart: str = ""
    ssh_key_id: str = ""  # vultr: the id of an SSH key already in the account


def split_key(key: str) -> tuple[str, str]:
    provider, sep, offer_id = key.partition(":")
    if not sep or not offer_id or provider not in ("vast", "vultr", "gcp"):
        raise ZeldaError(f"offer '{key}' must look like vast:<id>, vultr:<plan>@<region> or gcp:<type>@<zone>", exit_code=2)
    if provider == "gcp":
        raise ZeldaError("gcp: launching from zelda-tui is not supported yet — browse here, create the VM with gcloud")
    return provider, offer_id


def _client(provider: str, urls: dict[str, str]):
    if provider == "vast":
        return VastClient.from_env(base_url=urls.get("vast", vast.BASE_URL))
    return VultrClient.from_env(base_url=urls.get("vultr", vultr.BASE_URL))


def describe_launch(key: str, spec: LaunchSpec, urls: dict[str, str]) -> str:
    provider, offer_id = split_key(key)
    client = _client(provider, urls)
    try:
        if provider == "vast":
            return client.describe_create_instance(offer_id, spec.image, spec.disk_gb, spec.onstart, spec.label)
        plan, region = split_offer_id(offer_id)
        return client.describe_create_instance(plan, region, spec.ssh_key_id, spec.label)
    finally:
        client.close()


def launch(key: str, spec: LaunchSpec, urls: dict[str, str]) -> str:
    """Rent the offer; returns the provider's instance id."""
    provider, offer_id = split_key(key)
    client = _client(provider, urls)
    try:
        if provider == "vast":
            return client.create_instance(offer_id, spec.image, spec.disk_gb, spec.onstart, spec.label)
        if not spec.ssh_key_id:
            raise ZeldaError("vultr: set [providers.vultr] ssh_key_id in config.toml (an SSH key id of your account)")
        plan, region = split_offer_id(offer_id)
        return client.create_instance(plan, region, spec.ssh_key_id, spec.label).id
    finally:
        client.close()


def show(provider: str, instance_id: str, urls: dict[str, str]) -> InstanceInfo:
    client = _client(provider, urls)
    try:
        return client.show_instance(instance_id) if provider == "vast" else client.get_instance(instance_id)
    finally:
        client.close()


def destroy(provider: str, instance_id: str, urls: dict[str, str]) -> None:
    client = _client(provider, urls)
    try:
        if provider == "vast":
            client.destroy_instance(instance_id)
        else:
            client.delete_instance(instance_id)
    finally:
        client.close()
