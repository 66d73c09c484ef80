"""Fake box tools for the environment tests: an `nvidia-smi` script per driver, and "image
pythons" that answer the probe snippet and the CUDA check as a (CUDA) torch would, create venvs
of themselves and log every `pip install` instead of downloading anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SMI = """#!/bin/sh
case "$1" in
  --query-gpu=*) printf '%b' {query} ;;
  "") printf '%b' {plain} ;;
esac
exit {rc}
"""

PYTHON = """#!{exe}
import json, os, shutil, sys
from pathlib import Path
me = Path(sys.argv[0])
cfg = json.loads(me.with_name(me.name + ".json").read_text())
args = sys.argv[1:]
if args[:1] == ["-c"] and "zelda-probe" in args[1]:
    if cfg.get("broken"):
        sys.exit("Segmentation fault")
    print(json.dumps(cfg["probe"]))
elif args[:1] == ["-c"] and "zelda-cuda-check" in args[1]:
    if cfg.get("check", "").startswith("ok"):
        print(cfg["check"])
    else:
        sys.exit(cfg.get("check") or "RuntimeError: no CUDA")
elif args[:2] == ["-m", "venv"]:
    venv = Path(args[-1])
    (venv / "bin").mkdir(parents=True)
    shutil.copy(me, venv / "bin" / "python")
    child = dict(cfg, venv_of=str(me), system_site="--system-site-packages" in args)
    if not child["system_site"]:
        child["probe"] = dict(cfg["probe"], packages={{}})
    (venv / "bin" / "python.json").write_text(json.dumps(child))
elif args[:3] == ["-m", "pip", "install"]:
    with open(cfg["pip_log"], "a") as fh:
        fh.write(json.dumps(args[3:]) + "\\n")
else:
    sys.exit("fake python: unexpected " + repr(args))
"""


def nvidia_smi(path: Path, gpus: list[str] | None = None, driver: str = "550.54.15", cuda: str = "12.4",
               fail: str = "") -> str:
    """gpus: "name, memory" lines (None: no GPU); fail: the message of a broken driver."""
    if fail:
        text = SMI.format(query=repr(fail + "\n"), plain=repr(fail + "\n"), rc=9)
    else:
        query = "".join(f"{g}, {driver}\n" for g in gpus or [])
        plain = f"| NVIDIA-SMI {driver}   Driver Version: {driver}   CUDA Version: {cuda}     |\n" if gpus else ""
        text = SMI.format(query=repr(query), plain=repr(plain), rc=0 if gpus else 6)
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def image_python(path: Path, pip_log: Path, torch: str | None = "2.6.0+cu124", cuda: str | None = "12.4",
                 sees_gpu: bool = True, packages: dict | None = None, check: str = "ok 2.6.0+cu124 12.4 H100",
                 broken: bool = False) -> str:
    probe = {"python": "3.11.9", "packages": dict(packages or {})}
    if torch:
        probe.update(torch=torch, cuda=cuda, cuda_available=sees_gpu, devices=8 if sees_gpu else 0)
        probe["packages"]["torch"] = torch.split("+")[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PYTHON.format(exe=sys.executable))
    path.chmod(0o755)
    Path(f"{path}.json").write_text(json.dumps({"probe": probe, "check": check, "broken": broken,
                                                "pip_log": str(pip_log)}))
    return str(path)


def pip_installs(pip_log: Path) -> list[list[str]]:
    return [json.loads(line) for line in pip_log.read_text().splitlines()] if pip_log.exists() else []
