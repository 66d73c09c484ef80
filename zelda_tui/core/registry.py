"""Dataset registry: name, path, records, bytes, sha256, mtime, tags — in SQLite and as JSON.

`datasets_registry.json` (in the workspace) is the export other tools read; it is written
atomically and lists datasets in config order.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Executor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import atomic
from .errors import ZeldaError
from .inventory import Inventory

EXPORT_NAME = "datasets_registry.json"


def index(inventory: Inventory, pool: Executor | None = None, out: Path | None = None) -> tuple[list[dict], Path]:
    """Scan (cached), hash, store and export every configured dataset. Missing files are an error."""
    reports = inventory.scan(pool=pool)
    broken = [r for r in reports if r.error]
    if broken:
        raise ZeldaError(f"registry: {broken[0].error}" + (f" (+{len(broken) - 1} more)" if len(broken) > 1 else ""))
    now = time.time()
    rows: list[dict[str, Any]] = []
    for r in reports:
        spec = inventory.config.dataset(r.name)
        rows.append(
            {
                "name": r.name,
                "path": r.path,
                "records": r.records,
                "bytes": r.bytes,
                "sha256": inventory.sha256(spec),
                "mtime": r.mtime,
                "tags": list(spec.tags),
                "indexed_at": now,
            }
        )
    inventory.store.registry_replace(rows)
    target = out or inventory.config.workspace / EXPORT_NAME
    export = {
        "generated_at": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": str(inventory.config.path),
        "datasets": [
            {**{k: v for k, v in row.items() if k != "indexed_at"},
             "mtime": datetime.fromtimestamp(row["mtime"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            for row in rows
        ],
    }
    atomic.write_text(target, json.dumps(export, indent=2) + "\n")
    return rows, target
