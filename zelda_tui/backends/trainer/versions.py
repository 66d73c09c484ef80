"""The training stack's versions: the range the code is known to work in, checked at start.

Why each bound (keep pyproject's [train] extra and constraints/train-min.txt in step;
tests/trainer/test_start_checks.py checks both). `make test-min-versions` runs the trainer tests with
every lower bound installed (accelerate 1.4 and datasets 5.1, the lowest these accept), so each floor
below has run; torch is the only one at its newest there (the CPU build on the dev machines' disk):
  transformers >= 5.25  the load-time expert quantiser subclasses its 4-bit bitsandbytes quantizer
                        ops (`Bnb4bitQuantize.convert` over a dict of tensors), DeepSeek-V2's fused
                        3-D experts and `train_sampling_strategy` (length-grouped batches); 5.10.4
                        loads but its experts forward cannot run on parametrized 4-bit experts
                        (shape error), versions between are untested; < 6: internals may move.
  trl >= 1.0            SFTTrainer with completion-only loss, bfd packing with position_ids; < 2.
  peft >= 0.20          `target_parameters` and the v4->v5 target conversion we switch off; 0.19.x
                        cannot load a saved adapter under transformers 5.25 (passes the removed
                        `WeightConverter(distributed_operation=)`: TypeError in PeftModel.from_pretrained).
  bitsandbytes >= 0.50  `nn.parametrize` 4-bit experts; older releases leak the dequantisation
                        cache under non-reentrant checkpointing (bitsandbytes issue 2005), which
                        keeps every dequantised expert resident (~28 GB on DeepSeek-Coder-V2-Lite).
"""

from __future__ import annotations

from importlib import metadata

from packaging.version import Version

from ...core.errors import ZeldaError

# package: (lowest, first version not allowed or None)
SUPPORTED: dict[str, tuple[str, str | None]] = {
    "transformers": ("5.25", "6"),
    "trl": ("1.0", "2"),
    "peft": ("0.20", None),
    "bitsandbytes": ("0.50", None),
}
REPORTED = ("torch", *SUPPORTED, "accelerate", "datasets")


def installed() -> dict[str, str]:
    """Installed versions of the stack (a missing package shows as "missing")."""
    out = {}
    for name in REPORTED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def check(versions: dict[str, str] | None = None) -> dict[str, str]:
    """The installed versions, or a one-line error naming the first package outside its range."""
    versions = versions or installed()
    for name, (low, high) in SUPPORTED.items():
        have = versions.get(name, "missing")
        wanted = f">={low}" + (f",<{high}" if high else "")
        if have == "missing":
            raise ZeldaError(f"{name} is not installed; the trainer needs {name}{wanted}: pip install -e '.[train]'")
        v = Version(have)
        if v < Version(low) or (high and v >= Version(high)):
            raise ZeldaError(f"{name} {have} is outside the supported range {name}{wanted}: "
                             f"pip install '{name}{wanted}' (or pip install -e '.[train]')")
    return versions


def line(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items())
