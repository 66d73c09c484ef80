"""Cloud GPU providers (Vast.ai, Vultr, GCP): every call to a provider API lives here.

Each client returns normalised `core.offers.Offer`s and `InstanceInfo`s and fails with one-line
`ZeldaError`s naming the provider and the step; all HTTP goes through `http.ApiClient`.
"""

from __future__ import annotations

from .gcp import GcpClient, offers_from_machine_types
from .http import ApiClient, ApiError, InstanceInfo, RetryPolicy
from .vast import VastClient
from .vultr import VultrClient

__all__ = [
    "ApiClient", "ApiError", "GcpClient", "InstanceInfo", "RetryPolicy", "VastClient", "VultrClient",
    "offers_from_machine_types",
]
