"""The trainer's python on a GPU box, matched to the box's own driver.

Rented boxes run a spread of NVIDIA drivers, and their images often ship a CUDA torch built for
that driver. So before anything is installed the box is probed (nvidia-smi: GPUs, driver, the
highest CUDA it supports; each candidate python: does it import a torch that sees the GPUs?),
then the environment is chosen, most-working first:

- `image`: an image python whose torch sees the GPUs and meets the [train] minimum: a venv with
  `--system-site-packages` on top of it; pip adds only what it lacks (torch held at the image's).
- `index`: otherwise a fresh venv whose torch comes from the PyTorch index for the newest CUDA
  the driver supports (`download.pytorch.org/whl/cuXYZ`).
- `pypi`: a CPU run: a plain venv with the [train] extra from PyPI.
- `configured`: `[remote] python`, used as it is.

A GPU environment must pass a one-second CUDA check (allocate, matmul, a bitsandbytes 4-bit
matmul) before a trainer starts. The verified environment is recorded under
`<training_dir>/envs/<key>.json`, keyed by (base python and its torch, torch index, requirement
set), so later runs reuse it at once and nothing is installed twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .ssh_base import RemoteError

if TYPE_CHECKING:
    from .remote_runs import RemoteSettings
    from .ssh import SshSession

Progress = Callable[[str], None]
BOX_JSON = "box.json"  # the probe and the chosen environment, in the run dir (on the box and mirrored home)
DEFAULT_TORCH_MIN = (2, 6)
# the PyTorch wheel indexes by CUDA, newest first: the first one the driver's CUDA reaches is used
TORCH_INDEXES = (((13, 0), "cu130"), ((12, 8), "cu128"), ((12, 6), "cu126"), ((12, 4), "cu124"), ((11, 8), "cu118"))
TORCH_INDEX_URL = "https://download.pytorch.org/whl/{}"

# answers for one candidate python; never fails on a missing torch (argv[1]: the distributions to report)
PROBE_SNIPPET = """# zelda-probe
import json, sys
from importlib import metadata
out = {"executable": sys.executable, "python": "%d.%d.%d" % sys.version_info[:3], "packages": {}}
for name in json.loads(sys.argv[1]):
    try:
        out["packages"][name] = metadata.version(name)
    except Exception:
        pass
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["cuda_available"] = bool(torch.cuda.is_available())
    out["devices"] = torch.cuda.device_count() if out["cuda_available"] else 0
except Exception as exc:
    out["torch_error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""

# the one-second check a GPU environment passes before a trainer starts
CUDA_CHECK = """# zelda-cuda-check
import torch
if not torch.cuda.is_available():
    raise SystemExit("torch.cuda.is_available() is False")
x = torch.randn(512, 512, device="cuda")
(x @ x).sum().item()
import bitsandbytes as bnb
layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float16, quant_type="nf4").cuda()
layer(torch.randn(4, 64, device="cuda", dtype=torch.float16)).sum().item()
torch.cuda.synchronize()
print("ok", torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
"""


@dataclass
class GpuProbe:
    """What nvidia-smi says: GPU lines ("name, memory"), driver, highest CUDA; error when it failed."""

    gpus: list[str] = field(default_factory=list)
    driver: str = ""
    cuda: str = ""
    error: str = ""

    def describe(self) -> str:
        if not self.gpus:
            return self.error or "no GPU"
        names = ", ".join(sorted(set(self.gpus)))
        return f"{len(self.gpus)}× {names}; driver {self.driver or '?'} (CUDA ≤ {self.cuda or '?'})"


@dataclass
class PythonProbe:
    """One candidate python on the box and the torch it imports (error: why it could not say)."""

    path: str
    python: str = ""
    torch: str = ""
    cuda: str | None = None
    cuda_available: bool = False
    devices: int = 0
    packages: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return f"{self.path}: {self.error}"
        if not self.torch:
            return f"{self.path}: python {self.python}, no torch"
        gpu = f"sees {self.devices} GPU(s)" if self.cuda_available else "no GPU visible"
        return f"{self.path}: python {self.python}, torch {self.torch} (CUDA {self.cuda or 'none'}), {gpu}"


@dataclass
class BoxEnv:
    """The chosen environment: what runs the trainer, how it was built and why."""

    python: str
    kind: str  # image | index | pypi | configured
    reason: str
    key: str = ""
    base: str = ""
    index_url: str = ""
    torch: str = ""
    verified: str = ""  # the CUDA check's answer ("ok <torch> <cuda> <gpu>"), empty when not run
    reused: bool = False
    gpu: GpuProbe = field(default_factory=GpuProbe)
    pythons: list[PythonProbe] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


# --- parsing --------------------------------------------------------------------------
def version_tuple(text: str) -> tuple[int, ...]:
    """Leading numbers of a version ("2.6.0+cu124" -> (2, 6, 0)); () when there are none."""
    m = re.match(r"\d+(?:\.\d+)*", text or "")
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def parse_gpus(query: str, plain: str) -> GpuProbe:
    """`nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader` and plain
    `nvidia-smi` (whose banner holds "CUDA Version: X.Y")."""
    probe = GpuProbe()
    for line in query.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0]:
            probe.gpus.append(f"{parts[0]}, {parts[1]}")
            if len(parts) >= 3 and parts[2]:
                probe.driver = parts[2]
    m = re.search(r"CUDA Version:\s*([\d.]+)", plain)
    probe.cuda = m.group(1) if m else ""
    return probe


def torch_minimum(requirements: tuple[str, ...]) -> tuple[int, ...]:
    """The torch lower bound of the [train] extra (one place: pyproject)."""
    for req in requirements:
        m = re.match(r"torch\s*(?:>=|==|~=)\s*([\d.]+)", req.strip())
        if m:
            return version_tuple(m.group(1))
    return DEFAULT_TORCH_MIN


def requirement_name(req: str) -> str:
    m = re.match(r"[A-Za-z0-9_.\-]+", req.strip())
    return (m.group(0) if m else req).lower().replace("_", "-")


def torch_index(cuda: str) -> str | None:
    """The PyTorch wheel index for the newest CUDA a driver supports, or None when it is too old."""
    have = version_tuple(cuda)
    for need, tag in TORCH_INDEXES:
        if have and have[:2] >= need:
            return TORCH_INDEX_URL.format(tag)
    return None


# --- the probe ------------------------------------------------------------------------
def probe_gpus(session: SshSession, nvidia_smi: str = "nvidia-smi") -> GpuProbe:
    q = shlex.quote(nvidia_smi)
    res = session.run(f"{q} --query-gpu=name,memory.total,driver_version --format=csv,noheader", timeout=60)
    if res.rc != 0:
        said = (res.stdout.strip() + "\n" + res.stderr.strip()).strip().splitlines()
        if res.rc == 127 or not said:
            return GpuProbe(error="nvidia-smi finds no GPU")
        return GpuProbe(error=f"nvidia-smi failed: {said[-1].strip()}")
    plain = session.run(q, timeout=60)
    probe = parse_gpus(res.stdout, plain.stdout if plain.rc == 0 else "")
    if not probe.gpus:
        probe.error = "nvidia-smi finds no GPU"
    return probe


def probe_python(session: SshSession, path: str, packages: list[str]) -> PythonProbe:
    """Ask one candidate; a missing or broken one answers with its error, never raises."""
    q = shlex.quote
    try:
        res = session.run(f"{q(path)} -c {q(PROBE_SNIPPET)} {q(json.dumps(packages))}", timeout=120)
    except RemoteError as exc:
        return PythonProbe(path, error=str(exc).split(": ", 1)[-1])
    if res.rc != 0:
        said = (res.stderr.strip() or res.stdout.strip()).splitlines()
        return PythonProbe(path, error="not found" if res.rc == 127 else (said[-1] if said else f"exit {res.rc}"))
    try:
        got = json.loads(res.stdout.strip().splitlines()[-1])
        return PythonProbe(path, python=str(got.get("python", "")), torch=str(got.get("torch") or ""),
                           cuda=got.get("cuda"), cuda_available=bool(got.get("cuda_available")),
                           devices=int(got.get("devices") or 0), packages=dict(got.get("packages") or {}),
                           error="")
    except (ValueError, IndexError, TypeError, AttributeError):
        return PythonProbe(path, error=f"unreadable answer {res.stdout.strip()[:80]!r}")


def candidates(settings: RemoteSettings) -> list[str]:
    """remote.python alone when it is set (used as it is); else the image's usual pythons."""
    if settings.python:
        return [settings.python]
    return list(dict.fromkeys([settings.dir("venv", "bin", "python"), *settings.python_candidates]))  # venv: older versions made it


# --- choosing and building --------------------------------------------------------------
def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def choose(settings: RemoteSettings, gpu: GpuProbe, pythons: list[PythonProbe], device: str, label: str) -> BoxEnv:
    """The environment to build (not built yet): the first that can work, with the reason why."""
    reqs = settings.train_requirements
    minimum = torch_minimum(reqs)
    need = ".".join(map(str, minimum))
    if settings.python:
        p = pythons[0]
        if p.error:
            raise RemoteError(f"{label}: check python: {settings.python} cannot import the trainer stack: {p.error}")
        return BoxEnv(settings.python, "configured", "remote.python", base=settings.python, torch=p.torch,
                      key=_key("configured", settings.python, p.torch, reqs))
    usable = [p for p in pythons if not p.error and version_tuple(p.python) >= (3, 10)]
    if not usable:
        tried = "; ".join(p.describe() for p in pythons)
        raise RemoteError(f"{label}: check python: no python 3.10+ on the box ({tried}); install one or set remote.python")
    names = {requirement_name(r) for r in reqs}
    for p in usable:
        if p.torch and (device == "cpu" or p.cuda_available) and version_tuple(p.torch) >= minimum:
            sees = "CPU run" if device == "cpu" else f"sees {p.devices} GPU(s)"
            whole = names <= set(p.packages)  # the whole stack already there: used as it is
            return BoxEnv(p.path if whole else "", "image",
                          f"the image's torch {p.torch} (CUDA {p.cuda or 'none'}) at {p.path}, {sees}: "
                          + ("it has the whole [train] stack, used as it is" if whole else "building on it"),
                          base=p.path, torch=p.torch, key=_key("image", p.path, p.torch, reqs))
    if device == "cpu":
        return BoxEnv("", "pypi", "CPU run: the [train] extra from PyPI", base=usable[0].path,
                      key=_key("pypi", usable[0].path, reqs))
    index = torch_index(gpu.cuda)
    if index is None:
        raise RemoteError(f"{label}: check GPU: driver {gpu.driver or '?'} supports CUDA {gpu.cuda or '?'} only; "
                          f"torch>={need} needs CUDA 11.8 or newer: update the driver or pick another box")
    why = "; ".join(p.describe() for p in usable if p.torch) or "no image python has torch"
    tag = index.rsplit("/", 1)[-1]
    return BoxEnv("", "index", f"torch {tag} build (driver {gpu.driver or '?'} supports CUDA {gpu.cuda}; {why})",
                  base=usable[0].path, index_url=index, key=_key("index", usable[0].path, index, reqs))


def _record_path(settings: RemoteSettings, key: str) -> str:
    return settings.dir("envs", f"{key}.json")


def read_record(session: SshSession, settings: RemoteSettings, key: str) -> dict | None:
    try:
        with session.sftp.open(_record_path(settings, key), "rb") as fh:
            return json.loads(fh.read())
    except (FileNotFoundError, ValueError):
        return None


def write_record(session: SshSession, settings: RemoteSettings, env: BoxEnv) -> None:
    """Atomic on the box: a temp file renamed into place."""
    path = _record_path(settings, env.key)
    session.check(f"mkdir -p {shlex.quote(settings.dir('envs'))}", "record the environment")
    with session.sftp.open(path + ".part", "wb") as fh:
        fh.write(json.dumps({**env.to_json(), "recorded_at": time.time()}, indent=1).encode())
    session.sftp.posix_rename(path + ".part", path)


def build(session: SshSession, settings: RemoteSettings, env: BoxEnv, pythons: list[PythonProbe],
          progress: Progress) -> None:
    """Create the venv of `env` and pip-install into it what it lacks."""
    label = session.host.label
    q = shlex.quote
    venv = settings.dir("envs", env.key)
    env.python = f"{venv}/bin/python"
    reqs = [r for r in settings.train_requirements]
    base = next((p for p in pythons if p.path == env.base), PythonProbe(env.base))
    torch_req = [r for r in reqs if requirement_name(r) == "torch"]
    rest = [r for r in reqs if requirement_name(r) != "torch"]
    steps = []
    if env.kind == "image":
        missing = [requirement_name(r) for r in rest if requirement_name(r) not in base.packages]
        progress(f"{label}: building on {env.base} (torch {env.torch}); missing: {', '.join(missing) or 'nothing'}")
        steps.append(f"{q(env.base)} -m venv --system-site-packages {q(venv)}")
        steps.append(f"{q(env.python)} -m pip install -q {' '.join(q(r) for r in rest + [f'torch=={env.torch}'])}")
    elif env.kind == "index":
        progress(f"{label}: installing {env.reason} (minutes)")
        steps.append(f"{q(env.base)} -m venv {q(venv)}")
        steps.append(f"{q(env.python)} -m pip install -q --index-url {q(env.index_url)} "
                     f"{' '.join(q(r) for r in torch_req or ['torch'])}")
        steps.append(f"{q(env.python)} -m pip install -q {' '.join(q(r) for r in rest)}")
    else:
        progress(f"{label}: creating a venv with the trainer stack (first run on this box: minutes)")
        steps.append(f"{q(env.base)} -m venv {q(venv)}")
        steps.append(f"{q(env.python)} -m pip install -q {' '.join(q(r) for r in reqs)}")
    session.check(f"mkdir -p {q(settings.dir('envs'))} && " + " && ".join(steps),
                  f"create the python environment ({env.kind})", timeout=3600)


def verify(session: SshSession, env: BoxEnv) -> str:
    """The one-second CUDA check; one line with the driver, the torch build and what to do on failure."""
    res = session.run(f"{shlex.quote(env.python)} -c {shlex.quote(CUDA_CHECK)}", timeout=300)
    out = res.stdout.strip().splitlines()
    if res.rc != 0 or not out or not out[-1].startswith("ok"):
        said = (res.stderr.strip().splitlines() or out or [f"exit {res.rc}"])[-1].strip()
        raise RemoteError(f"{session.host.label}: CUDA check failed with driver {env.gpu.driver or '?'} "
                          f"(CUDA ≤ {env.gpu.cuda or '?'}) and torch {env.torch or '?'} from {env.kind} ({env.python}): "
                          f"{said}; pick a box with a newer driver, or set remote.python to a python whose torch "
                          "sees the GPUs")
    return out[-1]


def ensure(session: SshSession, settings: RemoteSettings, device: str, progress: Progress,
           gpu: GpuProbe | None = None) -> BoxEnv:
    """Probe, choose, build if not recorded, verify on a GPU run: the python the trainer runs with."""
    label = session.host.label
    gpu = gpu if gpu is not None else probe_gpus(session, settings.nvidia_smi)
    names = sorted({requirement_name(r) for r in settings.train_requirements})
    pythons = [probe_python(session, path, names) for path in candidates(settings)]
    for p in pythons:
        progress(f"{label}: python {p.describe()}")
    env = choose(settings, gpu, pythons, device, label)
    env.gpu, env.pythons = gpu, pythons
    record = read_record(session, settings, env.key) or {}
    if env.kind == "configured":
        p = pythons[0]
        needed = {requirement_name(r) for r in settings.trainer_stack} or set(names)
        lacking = [n for n in names if n in needed and n not in p.packages]
        if not p.torch or lacking:
            raise RemoteError(f"{label}: check python: {env.python} cannot import the trainer stack: "
                              f"missing {', '.join(lacking) or 'torch'}")
    elif env.python:
        progress(f"{label}: environment: {env.reason}")
    elif record.get("python") and session.run(f"test -x {shlex.quote(record['python'])}").rc == 0:
        env.python, env.reused = record["python"], True
        progress(f"{label}: reusing the {env.kind} environment {env.python}")
    else:
        progress(f"{label}: environment: {env.reason}")
        build(session, settings, env, pythons, progress)
        write_record(session, settings, env)  # built: a failed check below does not install it again
        record = {"python": env.python}
    if device != "cpu":
        if (record.get("verified") and record.get("python") == env.python
                and (record.get("gpu") or {}).get("driver") == gpu.driver):
            env.verified = record["verified"]
        else:
            progress(f"{label}: checking CUDA with {env.python}")
            env.verified = verify(session, env)
            progress(f"{label}: CUDA check: {env.verified}")
    if record.get("python") != env.python or (env.verified and record.get("verified") != env.verified):
        write_record(session, settings, env)
    return env


def recorded_python(run_dir: Path) -> str | None:
    """The python the run's trainer ran with on its box (box.json), which the box's evals use too."""
    try:
        python = json.loads((Path(run_dir) / BOX_JSON).read_text()).get("python")
    except (OSError, ValueError, AttributeError):
        return None
    return python if isinstance(python, str) and python else None


def summary(run_dir: Path) -> str | None:
    """One line from a run dir's box.json for `train status`: the GPUs and the environment; None without one."""
    try:
        got = json.loads((Path(run_dir) / BOX_JSON).read_text())
        gpu = GpuProbe(**got.get("gpu") or {})
        env = f"{got['kind']} {got['python']}" + (f" (torch {got['torch']})" if got.get("torch") else "")
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return f"{gpu.describe()}; {env}" + ("; CUDA check ok" if got.get("verified") else "")
