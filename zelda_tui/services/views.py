"""What services hand screens and the CLI: frozen dataclasses read by attribute.

Each has `to_json()`, the object `--json` prints (its keys are a contract: scripts read them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.leaderboard import LeaderboardRow
from ..core.offers import spent_usd
from ..core.runs import RunState

class View:
    """Base of the views whose `--json` object is simply their fields (nested views included)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass


# the instances table's columns, in order (core/store.py)
INSTANCE_COLUMNS = ("key", "provider", "instance_id", "offer", "gpu_name", "num_gpus", "dph_total", "started",
                    "ended", "state", "ssh_host", "ssh_port")


@dataclass(frozen=True)
class InstanceRow(View):
    """A rented GPU instance as state.sqlite records it, with what we learnt about it since.

    `ready` / `warning` are set only when the provider was asked (answered / failed); `hours` only
    in listings; `spent_usd` is None for a launch's new row. `tracked` is False for an instance
    destroyed by `provider:id` that state.sqlite never recorded: only its key and end are known."""

    key: str
    provider: str
    instance_id: str | None
    offer: str | None = None
    gpu_name: str | None = None
    num_gpus: int | None = None
    dph_total: float | None = None
    started: float | None = None
    ended: float | None = None
    state: str = ""
    ssh_host: str | None = None
    ssh_port: int | None = None
    ready: bool | None = None
    warning: str | None = None
    hours: float | None = None
    spent_usd: float | None = None
    tracked: bool = True

    @classmethod
    def from_record(cls, record: dict[str, Any], **extra: Any) -> "InstanceRow":
        """From a row of `Store.instance_rows()` (its columns), plus `extra` fields."""
        columns: dict[str, Any] = {c: record.get(c) for c in INSTANCE_COLUMNS}
        return cls(**columns, **extra)

    @property
    def running(self) -> bool:
        """Still held (and billing): not ended."""
        return self.ended is None

    @property
    def endpoint(self) -> str | None:
        """`host:port` of its SSH endpoint, once the provider gave one."""
        return f"{self.ssh_host}:{self.ssh_port}" if self.ssh_host else None

    def cost(self, now: float) -> float:
        """What it has cost by `now` ($/h x time held, unrounded)."""
        return spent_usd({"started": self.started, "ended": self.ended, "dph_total": self.dph_total}, now)

    def to_json(self) -> dict[str, Any]:
        if not self.tracked:
            return {"key": self.key, "provider": self.provider, "instance_id": self.instance_id, "state": self.state,
                    "started": self.started, "ended": self.ended, "spent_usd": self.spent_usd}
        out: dict[str, Any] = {c: getattr(self, c) for c in INSTANCE_COLUMNS}
        for name in ("ready", "warning", "hours", "spent_usd"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class Spend(View):
    """[budget] limits and what tracked instances have cost so far ($/h x time held)."""

    max_total_usd: float | None
    max_hourly_usd: float | None
    spent_usd: float
    left_usd: float | None
    max_runtime_hours: float | None


@dataclass(frozen=True)
class EnforceAction(View):
    """One instance the budget rules destroyed (or, in a dry run, would); `error` when the destroy failed."""

    key: str
    reason: str
    destroyed: bool
    state: str
    spent_usd: float
    error: str | None = None


@dataclass(frozen=True)
class OfferRow(View):
    """One GPU offer, with fit / hours / dollars for the planned mix (None: cannot be estimated)."""

    key: str
    provider: str
    id: str
    gpu_name: str
    num_gpus: int
    gpu_ram: float
    dph_total: float
    region: str | None
    reliability: float | None
    available: bool
    price_date: str | None
    price_source: str | None
    fit: str | None = None
    vram_gb: float | None = None
    hours: float | None = None
    dollars: float | None = None
    tokens_per_s_source: str | None = None


@dataclass(frozen=True)
class LaunchPlan(View):
    """What a launch would rent and cost, and why the budget guard refuses it (empty: it allows)."""

    offer: OfferRow
    budget: Spend
    over_budget: list[str]
    request: str


@dataclass(frozen=True)
class RunView(View):
    """A run as the Runs screen and `train list/status` show it: state, progress, latest metrics.

    A remote run's fields are as of the last sync of its mirror (`synced_at`); `instance` and
    `spent_usd` are the tracked instance behind its host, when there is one."""

    name: str
    run_dir: Path
    host: str
    mix: str
    phase: int | None
    state: RunState
    pid: int | None = None
    step: int = 0
    max_steps: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = None
    vram_peak_gb: float | None = None
    eta_s: float | None = None
    heartbeat: float | None = None
    finished: float | None = None
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    message: str = ""
    remote_dir: str | None = None
    synced_at: float | None = None
    instance: str | None = None
    spent_usd: float | None = None
    home_checkpoint: str | None = None  # a remote run's newest checkpoint copied here whole and verified (#17)
    evals: str | None = None  # what the run's eval generators do (as last mirrored): evaluating checkpoint-N (3/40)...

    @property
    def is_remote(self) -> bool:
        """Ran on a GPU box (its run dir here is a mirror)."""
        return bool(self.remote_dir)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "run_dir": str(self.run_dir), "state": str(self.state)}


@dataclass(frozen=True)
class EstimateView(View):
    """VRAM verdict, time and cost of training a mix/phase on a GPU (`zelda-tui estimate`).

    `gpu_note` says which card an ambiguous --gpu was taken as ("" when it was not ambiguous)."""

    model: str
    gpu: str
    gpus: int
    mix: str
    phase: int | None
    train_tokens: int
    epochs: float
    seq_len: int
    micro_batch: int
    vram_gb: float
    verdict: str
    vram_breakdown_gb: dict[str, float]
    tokens_per_s_per_gpu: float
    tokens_per_s_source: str
    hours: float
    dollars: float
    gpu_note: str = ""


@dataclass(frozen=True)
class FetchView(View):
    """A remote run's files brought home: which (relative paths), how many bytes moved, where to."""

    run: str
    fetched: list[str]
    bytes: int
    into: str


@dataclass(frozen=True)
class BackupView(View):
    """lora_adapters/ of a remote run rsynced from its box to the [backup] target."""

    run: str
    target: str
    bytes: int | None  # what rsync sent, when it says


@dataclass(frozen=True)
class MixBuildView(View):
    """A built mix: its bundle dir, the counts a reader shows, and metadata.json as written (the bundle's
    contract, DESIGN). `mix build --json` prints {"out", "metadata"}."""

    out: Path
    name: str
    total_train: int
    total_eval: int
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "metadata": self.metadata}



@dataclass(frozen=True)
class LeaderboardView(View):
    """Every scored checkpoint of one prompt set, ranked (`zelda-tui leaderboard`); `prompt_set` is None
    while nothing is scored, `prompt_sets` are all sets with results, newest first."""

    prompt_set: str | None
    prompt_sets: list[str]
    sort: str
    rows: list[LeaderboardRow]

    def to_json(self) -> dict[str, Any]:
        return {"prompt_set": self.prompt_set, "prompt_sets": list(self.prompt_sets), "sort": self.sort,
                "rows": [row.to_json() for row in self.rows]}


@dataclass(frozen=True)
class PromptSetRow(View):
    """A prompt set with eval results: how many checkpoints were scored on it, and when last."""

    prompt_set: str
    checkpoints: int
    last: float


@dataclass(frozen=True)
class SampleRow(View):
    """One stored answer of a checkpoint to a prompt (sample 0: greedy), with Asar's verdict.

    `line` is the failing line in `code` (the snippet Asar checked); `match` is None when the
    prompt has no reference. Its `to_json()` keys are `eval show --json`'s (a contract)."""

    run: str
    checkpoint: str
    prompt_set: str
    prompt_idx: int
    sample: int
    category: str
    prompt: str
    reference: str | None
    answer: str
    verdict: str
    checker: str
    errors: list[str]
    line: int | None
    code: str
    match: bool | None
    truncated: bool

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "SampleRow":
        """From a row of `Store.eval_rows()` (its columns)."""
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RegistryRow(View):
    """One dataset as the registry indexed it (state.sqlite and the exported JSON)."""

    name: str
    path: str
    records: int
    bytes: int
    sha256: str
    mtime: float
    tags: list[str]
    indexed_at: float


@dataclass(frozen=True)
class RegistryIndexView(View):
    """`registry index`: every configured dataset hashed and stored, and where the export was written."""

    export: Path
    datasets: list[RegistryRow]

    def to_json(self) -> dict[str, Any]:
        return {"export": str(self.export), "datasets": [row.to_json() for row in self.datasets]}
