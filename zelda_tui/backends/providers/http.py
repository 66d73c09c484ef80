"""The one HTTP helper every provider client goes through.

Why one helper: retries, timeouts, JSON decoding, secret redaction and the mapping of every
failure to a one-line `ZeldaError` ("<provider>: <step>: <what> — <hint>") live in one place,
so Vast, Vultr and GCP fail the same way and no client can leak its key by forgetting to
redact. The API key is kept out of the `httpx.Client` (it is added per request), out of
`repr()`, and scrubbed from any text we build from a server answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from ...core.errors import ZeldaError

REDACTED = "***"
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
SECRET_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token"})


class ApiError(ZeldaError):
    """A provider call that failed; `status` is the HTTP status (None for network failures).

    Subclassed so clients can turn a status into a better hint (Vast 404/410 on rent = offer gone)
    without parsing the message.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: 429 always, 5xx only where repeating the call is harmless.

    `max_total_wait` caps the sleeping across all attempts so a `Retry-After: 3600` fails
    now with a clear message instead of freezing the TUI for an hour.
    """

    max_attempts: int = 4
    base_delay: float = 0.5  # first backoff; doubles each attempt
    max_delay: float = 10.0  # one sleep never exceeds this (unless Retry-After asks for more, then we give up)
    max_total_wait: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff for attempt 1, 2, ... (no jitter: one user, one client)."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


@dataclass
class InstanceInfo:
    """A launched machine as the rest of the app needs it, whatever the provider.

    `status` is the provider's word (vast `actual_status`, vultr `status`); `ready` says
    whether SSH can be tried; `raw` is the answer minus secrets (passwords, tokens).
    """

    provider: str
    id: str
    status: str
    ready: bool = False
    ssh_host: str | None = None
    ssh_port: int | None = None
    public_ip: str | None = None
    label: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ssh_endpoint(self) -> tuple[str, int] | None:
        """(host, port) once the machine is ready and the provider told us where SSH listens."""
        if self.ready and self.ssh_host and self.ssh_port:
            return self.ssh_host, self.ssh_port
        return None


def one_line(text: str, limit: int = 200) -> str:
    """Squash a server message into one short line (errors must be one line)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` (the OS's ConnectionRefusedError, TimeoutError) is in `exc`'s chain of causes: what
    went wrong under a library's wrapper (httpx, requests), told by its type, not by the wrapper's wording."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _server_detail(body: bytes) -> str:
    """The human part of an error body: vast `msg`/`error`, vast 429 `detail`, vultr `error`."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return one_line(body.decode("utf-8", "replace"), 120) if body else ""
    if isinstance(data, dict):
        for key in ("msg", "detail", "error", "message"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return one_line(value, 160)
            if isinstance(value, dict) and isinstance(value.get("message"), str):  # GCP {"error": {"message"}}
                return one_line(value["message"], 160)
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds; HTTP-date values are ignored (we fall back to our backoff)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


class ApiClient:
    """A provider's base URL + optional bearer token over one `httpx.Client`.

    `request()` returns decoded JSON (or None for an empty body) and raises `ApiError` with a
    one-line message naming the provider and the step.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        token: str | None = None,
        key_env: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/") + "/"
        self.key_env = key_env
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry or RetryPolicy()
        self._token = token or None
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"Accept": "application/json", "User-Agent": "zelda-tui"},
            transport=transport,
            follow_redirects=False,  # a redirect could carry the Authorization header elsewhere
        )

    def __repr__(self) -> str:
        token = REDACTED if self._token else None
        return f"ApiClient(provider={self.provider!r}, base_url={self.base_url!r}, token={token!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building requests -------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL for `path` ("/bundles/" joins under the base URL, not at the host root)."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers a request carries, including the real token (never print this)."""
        headers = dict(self._http.headers)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if extra:
            headers.update(extra)
        return headers

    def redact(self, text: str) -> str:
        """Replace the token wherever it appears (servers sometimes echo what they got).

        Tokens shorter than 4 characters are not real keys and would mangle every word.
        """
        if self._token and len(self._token) >= 4 and self._token in text:
            text = text.replace(self._token, REDACTED)
        return text

    def describe_request(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """The exact request as text for `--dry-run`, with secrets shown as `***`.

        Secret headers keep their scheme (`Bearer ***`) so the user can see auth *would* be sent.
        """
        request = self._http.build_request(method.upper(), self.url(url), params=params)
        query = "&".join(
            f"{k}={REDACTED if k.lower() in SECRET_PARAMS else v}" for k, v in request.url.params.multi_items()
        )
        target = str(request.url.copy_with(query=None)) + (f"?{query}" if query else "")
        lines = [f"{method.upper()} {target}"]
        all_headers = self.headers(headers)
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        for name, value in all_headers.items():
            if name.lower() in SECRET_HEADERS:
                scheme, _, rest = value.partition(" ")
                value = f"{scheme} {REDACTED}" if rest else REDACTED
            lines.append(f"{'-'.join(part.capitalize() for part in name.split('-'))}: {value}")
        if body is not None:
            lines.append("")
            lines.append(json.dumps(body, indent=2, sort_keys=True))
        return self.redact("\n".join(lines))

    # -- sending ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        step: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry_server_errors: bool | None = None,
    ) -> Any:
        """Send with retries; return decoded JSON, or None for an empty body (e.g. HTTP 204).

        `retry_server_errors` defaults to True for GET/HEAD/DELETE only: repeating a POST/PUT
        after a 500 could rent a second machine. Callers mark read-only POSTs (vast search) True.
        """
        method = method.upper()
        if retry_server_errors is None:
            retry_server_errors = method in {"GET", "HEAD", "DELETE"}
        url = self.url(path)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            response = self._send(method, url, step, params, json_body)
            status = response.status_code
            retryable = status == 429 or (status >= 500 and retry_server_errors)
            if not retryable or attempt >= self.retry.max_attempts:
                break
            delay = _retry_after(response) if status == 429 else None
            if delay is None:
                delay = self.retry.backoff(attempt)
            if delay > self.retry.max_delay or waited + delay > self.retry.max_total_wait:
                break  # waiting that long would freeze the caller; report now
            self._sleep(delay)
            waited += delay
        if status >= 400:
            raise self._status_error(step, response, attempt)
        return self._decode(step, response)

    def _send(self, method: str, url: str, step: str, params: Any, json_body: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, params=params, json=json_body, headers=self.headers())
        except httpx.ConnectTimeout:
            raise self._error(step, f"timed out connecting to {self._host(url)} after {self.connect_timeout:g}s — check your network") from None
        except httpx.TimeoutException:
            raise self._error(step, f"no answer from {self._host(url)} within {self.read_timeout:g}s (read timeout) — try again later") from None
        except httpx.ConnectError as exc:
            reason = ("connection refused" if caused_by(exc, ConnectionRefusedError)
                      else one_line(str(exc), 80) or "cannot connect")
            raise self._error(step, f"cannot connect to {self._host(url)} ({reason}) — check your network") from None
        except httpx.HTTPError as exc:
            raise self._error(step, f"network error talking to {self._host(url)}: {type(exc).__name__} {one_line(str(exc), 80)}") from None

    @staticmethod
    def _host(url: str) -> str:
        parsed = httpx.URL(url)
        return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host

    def _error(self, step: str, text: str, status: int | None = None) -> ApiError:
        return ApiError(self.redact(one_line(f"{self.provider}: {step}: {text}", 300)), status)

    def _status_error(self, step: str, response: httpx.Response, attempts: int) -> ApiError:
        status = response.status_code
        detail = _server_detail(response.content)
        suffix = f" ({detail})" if detail else ""
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        key = self.key_env or "the API key"
        if status == 401:
            text = f"401 unauthorized — check {key}" if self._token else f"401 unauthorized — {key} is not set"
        elif status == 403:
            text = f"403 forbidden{suffix} — check {key} and its permissions"
        elif status == 404:
            text = f"404 not found{suffix}"
        elif status == 410:
            text = f"410 gone{suffix}"
        elif status == 429:
            wait = _retry_after(response)
            hint = f"server asks to wait {wait:g}s" if wait is not None else "wait a minute"
            text = f"429 rate limited{tries}{suffix} — {hint} and try again"
        elif status >= 500:
            text = f"{status} server error{tries if attempts > 1 else ''}{suffix} — the provider is having trouble; try again later"
        else:
            text = f"{status} {response.reason_phrase or 'error'}{suffix}"
        return self._error(step, text, status)

    def _decode(self, step: str, response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            return self._raise_malformed(step, response, exc)

    def _raise_malformed(self, step: str, response: httpx.Response, exc: ValueError) -> Any:
        raise self._error(step, f"malformed JSON in the {response.status_code} answer ({one_line(str(exc), 80)})") from None


def require(data: Any, key: str, kind: type, client: ApiClient, step: str) -> Any:
    """`data[key]` checked to be `kind`; a missing/odd field is an error, not a KeyError trace."""
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        got = type(data.get(key)).__name__ if isinstance(data, dict) else type(data).__name__
        raise client._error(step, f"unexpected answer: expected {kind.__name__} `{key}`, got {got}")
    return data[key]


class BadField(ValueError):
    """One field of one item in a provider's answer has a type we cannot use (`num_gpus: "two"`)."""


def get_field(raw: dict[str, Any], key: str, kind: type, default: Any = None, required: bool = False) -> Any:
    """`raw[key]` as `kind` (int, float, str); missing/null gives `default` unless required.

    Numbers may come as numeric strings ("2", "0.5"); anything else is a `BadField` naming the key,
    so one odd item is skipped with a warning instead of ending the whole listing in a traceback.
    """
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise BadField(f"`{key}` is missing")
        return default
    if kind is str:
        if isinstance(value, (dict, list)):
            raise BadField(f"`{key}` = {one_line(repr(value), 40)} is not text")
        return str(value)
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise BadField(f"`{key}` = {one_line(repr(value), 40)} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadField(f"`{key}` = {one_line(repr(value), 40)} is not a number") from None
    if kind is int:
        if not number.is_integer():
            raise BadField(f"`{key}` = {value!r} is not a whole number")
        return int(number)
    return number


def convert_each(items: list[Any], convert: Callable[[dict[str, Any]], Any], what: Callable[[dict[str, Any]], str],
                 ) -> tuple[list[Any], list[str]]:
    """Convert every item of a listing; an item that is not an object or has a bad field is left out
    with one warning line (`vast: offer 123: skipped: `num_gpus` = 'two' is not a number`)."""
    converted, skipped = [], []
    for item in items:
        if not isinstance(item, dict):
            skipped.append(f"{one_line(repr(item), 40)}: skipped: not an object")
            continue
        try:
            converted.append(convert(item))
        except BadField as exc:
            skipped.append(f"{what(item)}: skipped: {exc}")
    return converted, skipped


class ProviderClient:
    """What every provider client shares: one `ApiClient`, the key from the environment."""

    NAME = ""
    BASE_URL = ""
    KEY_ENV = ""
    KEY_HELP = ""  # where a user creates a key

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.api = ApiClient(
            self.NAME, base_url or self.BASE_URL, token=api_key, key_env=self.KEY_ENV,
            connect_timeout=connect_timeout, read_timeout=read_timeout, retry=retry,
        )
        self.skipped: list[str] = []  # items of the last listing left out for a bad field (warnings)

    @classmethod
    def from_env(cls, **kwargs: Any):
        """The key from the provider's variable; a missing key is a clear error before any request."""
        key = os.environ.get(cls.KEY_ENV, "").strip()
        if not key:
            raise ZeldaError(f"{cls.NAME}: {cls.KEY_ENV} is not set — create a key at {cls.KEY_HELP}")
        return cls(key, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api!r})"

    def close(self) -> None:
        self.api.close()
