"""GCP application-default credentials (ADC) files -> an OAuth access token for the Compute API.

Why our own discovery instead of `google.auth.default()`: `default()` falls back to the GCE metadata
server, which is unreachable from a laptop and would stall the offer browser, and it would make the
token endpoint impossible to point at a test server for `authorized_user` files. So we find the file
the way Google defines it (`$GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's
`application_default_credentials.json` under `$CLOUDSDK_CONFIG` or `~/.config/gcloud`), read it
ourselves (to name the file in errors and to honour its `token_uri`), and let **google-auth** do the
cryptography and the token grant. google-auth is optional (`pip install 'zelda-tui[gcp]'`): without it
GCP falls back to the offline catalog with a warning.

Only `service_account` and `authorized_user` files are accepted: the other ADC types
(`external_account`, impersonation) run executables or fetch URLs named in the file, which a GPU
price browser has no business doing.

Secrets (private key, refresh token, client secret, access token) never reach a repr, a log or an
error message: `AdcFile.info` is excluded from repr and every error text is scrubbed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from ...core.errors import ZeldaError
from .http import REDACTED, caused_by, one_line

ADC_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
CLOUDSDK_CONFIG_ENV = "CLOUDSDK_CONFIG"
ADC_FILE_NAME = "application_default_credentials.json"
SCOPE = "https://www.googleapis.com/auth/compute.readonly"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
INSTALL_HINT = "pip install 'zelda-tui[gcp]'"
SUPPORTED_TYPES = ("service_account", "authorized_user")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0

# Fields of a credentials file that are secrets: scrubbed from any text we build.
SECRET_FIELDS = ("private_key", "private_key_id", "refresh_token", "client_secret")


def gcloud_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """gcloud's configuration folder: `$CLOUDSDK_CONFIG`, else `%APPDATA%\\gcloud` on Windows,
    else `~/.config/gcloud` (where `gcloud auth application-default login` writes the ADC file)."""
    env = os.environ if environ is None else environ
    configured = env.get(CLOUDSDK_CONFIG_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if os.name == "nt":
        appdata = env.get("APPDATA", "").strip()
        return Path(appdata, "gcloud") if appdata else Path(env.get("SystemDrive", "C:") + "\\", "gcloud")
    return Path.home() / ".config" / "gcloud"


@dataclass(frozen=True)
class AdcLocation:
    """Where the ADC file is and how it was found (shown in messages: "which file?" is the first
    question when credentials fail)."""

    path: Path
    origin: str  # "$GOOGLE_APPLICATION_CREDENTIALS" or "gcloud default"


def find_adc_file(environ: Mapping[str, str] | None = None) -> AdcLocation | None:
    """The ADC file Google's rules pick, or None when ADC is not configured at all.

    A set `$GOOGLE_APPLICATION_CREDENTIALS` wins even when its file is missing (that is a mistake
    to report, not a reason to silently use another account's file).
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ADC_ENV, "").strip()
    if explicit:
        return AdcLocation(Path(explicit).expanduser(), f"${ADC_ENV}")
    default = gcloud_config_dir(env) / ADC_FILE_NAME
    return AdcLocation(default, "gcloud default") if default.is_file() else None


@dataclass(frozen=True)
class AdcFile:
    """A parsed ADC file: what we need in clear, the secrets only inside `info` (never repr'd)."""

    path: Path
    origin: str
    type: str  # "service_account" | "authorized_user"
    token_uri: str
    project_id: str | None
    quota_project_id: str | None
    info: dict[str, Any] = field(repr=False, compare=False)

    @property
    def hint(self) -> str:
        """How a message names these credentials: the file and how it was found."""
        return f"the credentials in {self.path} ({self.origin})"

    def scrub(self, text: str) -> str:
        """`text` with every secret of this file replaced by `***` (also each line of the key)."""
        for name in SECRET_FIELDS:
            value = self.info.get(name)
            if not isinstance(value, str) or len(value) < 8:
                continue
            text = text.replace(value, REDACTED)
            for part in value.splitlines():
                if len(part) >= 16 and not part.startswith("-----"):
                    text = text.replace(part, REDACTED)
        return text


def _fail(location: AdcLocation | AdcFile, what: str) -> ZeldaError:
    return ZeldaError(one_line(f"gcp: read credentials: {location.path} ({location.origin}): {what}", 300))


def _check_token_uri(location: AdcLocation, uri: str) -> str:
    """https anywhere, plain http only to this machine: a refresh token or a signed assertion must
    not cross a network in clear text."""
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS:
        return uri
    raise _fail(location, f"token_uri must be an https URL (got {parts.scheme or 'no scheme'}://{parts.hostname or '?'}) "
                          "— refusing to send credentials in clear text")


def read_adc_file(location: AdcLocation) -> AdcFile:
    """Parse and check the file; a missing file, broken JSON, an unsupported type or missing fields
    are one-line errors naming the file (never its contents)."""
    try:
        text = location.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(location, "file not found — fix the path or run `gcloud auth application-default login`") from None
    except OSError as exc:
        raise _fail(location, f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise _fail(location, f"not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(info, dict):
        raise _fail(location, "not a JSON object")
    kind = info.get("type")
    if kind not in SUPPORTED_TYPES:
        raise _fail(location, f"credentials type {str(kind)[:40]!r} is not supported — use a service_account key "
                              "or `gcloud auth application-default login` (authorized_user)")
    needed = ("client_email", "private_key", "token_uri") if kind == "service_account" else (
        "client_id", "client_secret", "refresh_token")
    missing = [name for name in needed if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise _fail(location, f"{kind} file lacks {', '.join(missing)}")
    token_uri = info.get("token_uri") or GOOGLE_TOKEN_URI
    if not isinstance(token_uri, str):
        raise _fail(location, "token_uri is not a string")

    def text_field(name: str) -> str | None:
        value = info.get(name)
        return (value.strip() or None) if isinstance(value, str) else None

    return AdcFile(location.path, location.origin, kind, _check_token_uri(location, token_uri),
                   text_field("project_id"), text_field("quota_project_id"), info)


def resolve_project(configured: Any, adc: AdcFile, environ: Mapping[str, str] | None = None) -> str:
    """`[providers.gcp] project`, else `$GOOGLE_CLOUD_PROJECT`, else the file's `project_id`, else its
    `quota_project_id`; an error when none is set (the Compute list calls need a project)."""
    env = os.environ if environ is None else environ
    if configured is not None and not isinstance(configured, str):
        raise ZeldaError("gcp: project: config [providers.gcp] project must be a string")
    for candidate in ((configured or "").strip(), env.get(PROJECT_ENV, "").strip(), adc.project_id, adc.quota_project_id):
        if candidate:
            if not all(c.isalnum() or c in "-.:_" for c in candidate):
                raise ZeldaError(f"gcp: project: {candidate[:60]!r} is not a project id")
            return candidate
    raise ZeldaError(f"gcp: project: no project — set [providers.gcp] project in config.toml or ${PROJECT_ENV} "
                     f"({adc.path} names none)")


# ------------------------------------------------------------------------------------- tokens


def _google_auth() -> Any:
    """The google-auth modules we use, imported late: the extra is optional."""
    try:
        import google.auth.exceptions as exceptions
        import google.auth.transport.requests as transport
        import google.oauth2.credentials as user_credentials
        import google.oauth2.service_account as service_account
        import requests
    except ImportError:
        raise ZeldaError(f"gcp: get access token: google-auth is not installed — {INSTALL_HINT} "
                         "to use application-default credentials") from None
    return SimpleNamespace(exceptions=exceptions, transport=transport, user=user_credentials, sa=service_account,
                           requests=requests)


def require_google_auth() -> None:
    """Fail early with the install hint (before any network call) when the extra is missing."""
    _google_auth()


def _credentials(adc: AdcFile, ga: Any) -> Any:
    """google-auth credentials for the file, with the file's token_uri.

    Service accounts ask for the compute.readonly scope. A user's (authorized_user) refresh token
    is refreshed without a scope: its scopes were fixed at `gcloud auth application-default login`
    (cloud-platform), and asking for a scope string outside that grant is rejected as invalid_scope.
    google-auth's own `from_authorized_user_info` always uses Google's endpoint, so the user
    credentials are built directly to honour the file's `token_uri`.
    """
    try:
        if adc.type == "service_account":
            return ga.sa.Credentials.from_service_account_info(adc.info, scopes=[SCOPE])
        return ga.user.Credentials(
            token=None, refresh_token=adc.info["refresh_token"], client_id=adc.info["client_id"],
            client_secret=adc.info["client_secret"], token_uri=adc.token_uri,
            quota_project_id=adc.quota_project_id,
        )
    except (ValueError, TypeError, KeyError) as exc:  # a key that does not parse, odd fields
        raise _fail(adc, adc.scrub(f"google-auth cannot use it ({type(exc).__name__}: {one_line(str(exc), 100)})")) from None


def _token_error_detail(exc: Exception) -> str:
    """The OAuth error of a RefreshError ("invalid_grant: Invalid JWT Signature.") without the dict."""
    args = getattr(exc, "args", ())
    text = args[0] if args and isinstance(args[0], str) else str(exc)
    return one_line(text, 140)


class AccessTokens:
    """Access tokens per ADC file, reused until google-auth says they expire.

    Why cache: the TUI searches on every filter change; one token grant per search would add a
    round trip and count against the token endpoint's rate limits. Keyed by the file's path, size
    and mtime so an edited file (e.g. after `gcloud auth application-default login`) is re-read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int, int], Any] = {}

    def __repr__(self) -> str:
        return f"AccessTokens(cached={len(self._cache)})"

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def token(self, adc: AdcFile) -> str:
        """A valid access token for `adc`; a failed grant is a one-line `ZeldaError` naming the
        token endpoint, the HTTP status and the file (secrets scrubbed)."""
        ga = _google_auth()
        try:
            stat = adc.path.stat()
            key = (str(adc.path.resolve()), stat.st_size, stat.st_mtime_ns)
        except OSError:
            key = (str(adc.path), -1, -1)
        with self._lock:
            creds = self._cache.get(key)
            if creds is not None and creds.valid and creds.token:
                return str(creds.token)
            creds = _credentials(adc, ga)
            self._refresh(adc, creds, ga)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != key[0]}
            self._cache[key] = creds
            return str(creds.token)

    @staticmethod
    def _refresh(adc: AdcFile, creds: Any, ga: Any) -> None:
        host = urlsplit(adc.token_uri).netloc
        statuses: list[int] = []
        base = ga.transport.Request

        class TimedRequest(base):  # type: ignore[misc, valid-type]
            """google-auth's requests transport with our timeouts (its default is 120 s) and the
            last HTTP status kept for the error message (RefreshError does not carry it)."""

            def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                         timeout: Any = None, **kwargs: Any) -> Any:
                response = super().__call__(url, method=method, body=body, headers=headers,
                                            timeout=timeout or (CONNECT_TIMEOUT_S, READ_TIMEOUT_S), **kwargs)
                statuses.append(int(response.status))
                return response

        session = ga.requests.Session()
        try:
            creds.refresh(TimedRequest(session))
        except ga.exceptions.RefreshError as exc:
            status = f"{statuses[-1]} " if statuses else ""
            raise ZeldaError(adc.scrub(one_line(
                f"gcp: get access token: token endpoint {host} answered {status}({_token_error_detail(exc)}) "
                f"— check {adc.hint}", 300))) from None
        except ga.exceptions.TransportError as exc:
            reason = "timed out" if caused_by(exc, TimeoutError) else (
                "connection refused" if caused_by(exc, ConnectionRefusedError) else "network error")
            raise ZeldaError(adc.scrub(one_line(
                f"gcp: get access token: cannot reach token endpoint {host} ({reason}) — check your network", 300))) from None
        except (ValueError, TypeError, KeyError, ga.exceptions.GoogleAuthError) as exc:  # e.g. a malformed answer
            raise ZeldaError(adc.scrub(one_line(
                f"gcp: get access token: unexpected answer from {host} ({type(exc).__name__})", 300))) from None
        finally:
            session.close()
        if not creds.token:
            raise ZeldaError(f"gcp: get access token: {host} answered without an access_token")


TOKENS = AccessTokens()
