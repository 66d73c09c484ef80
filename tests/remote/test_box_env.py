"""The trainer's environment on the box, chosen from what the box has (issue 19): the loopback sshd
is the box; its nvidia-smi and image pythons are the fake scripts of fake_box.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zelda_tui.backends import box_env, remote_runs
from zelda_tui.backends.ssh import RemoteError, SshSession

from .fake_box import image_python, nvidia_smi, pip_installs

REQS = ("textual==8.2.8", "torch>=2.6", "transformers>=5.25,<6", "peft>=0.19", "bitsandbytes>=0.50")
H100 = ["NVIDIA H100 80GB HBM3, 81559 MiB"] * 2


def settings(tmp_path: Path, smi: str, *pythons: str, python: str = "") -> remote_runs.RemoteSettings:
    return remote_runs.RemoteSettings(training_dir=str(tmp_path / "box"), python=python, train_requirements=REQS,
                                      nvidia_smi=smi, python_candidates=pythons)


def start_env(sshd, s: remote_runs.RemoteSettings, device: str = "auto") -> tuple[box_env.BoxEnv, list[str]]:
    said: list[str] = []
    with SshSession("gpu-box", sshd.settings()) as session:
        info = remote_runs.probe(session, s, device, 1000, said.append)
    return info.env, said


def test_parse_nvidia_smi_and_the_torch_index_per_driver():
    gpu = box_env.parse_gpus("NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05\n",
                             "| NVIDIA-SMI 535.104.05  Driver Version: 535.104.05  CUDA Version: 12.2 |")
    assert gpu.gpus == ["NVIDIA A100-SXM4-80GB, 81920 MiB"] and gpu.driver == "535.104.05" and gpu.cuda == "12.2"
    assert box_env.torch_index("12.2") == "https://download.pytorch.org/whl/cu118"
    assert box_env.torch_index("12.4").endswith("/cu124") and box_env.torch_index("12.9").endswith("/cu128")
    assert box_env.torch_index("13.0").endswith("/cu130") and box_env.torch_index("11.4") is None
    assert box_env.torch_minimum(REQS) == (2, 6)


def test_image_torch_that_sees_the_gpus_is_built_on_once(sshd, tmp_path: Path):
    log = tmp_path / "pip.log"
    broken = image_python(tmp_path / "img" / "broken", log, broken=True)
    cpu_only = image_python(tmp_path / "img" / "python3", log, torch="2.7.0", cuda=None, sees_gpu=False)
    conda = image_python(tmp_path / "img" / "conda-python", log, packages={"textual": "8.2.8", "peft": "0.19.1"})
    s = settings(tmp_path, nvidia_smi(tmp_path / "smi", H100), str(tmp_path / "nope"), broken, cpu_only, conda)
    env, said = start_env(sshd, s)
    assert env.kind == "image" and env.base == conda and "2.6.0+cu124" in env.reason
    assert env.python == f"{tmp_path}/box/envs/{env.key}/bin/python"
    assert json.loads(Path(f"{env.python}.json").read_text())["system_site"]  # on top of the image's torch
    assert any(line.endswith("GPU: 2× NVIDIA H100 80GB HBM3, 81559 MiB; driver 550.54.15 (CUDA ≤ 12.4)")
               for line in said)
    assert any("nope: not found" in line for line in said) and any("Segmentation fault" in line for line in said)
    assert any("missing: transformers, bitsandbytes" in line for line in said)
    installs = pip_installs(log)
    assert len(installs) == 1 and "torch==2.6.0+cu124" in installs[0] and "transformers>=5.25,<6" in installs[0]
    assert not any(r.startswith("torch>=") for r in installs[0])  # the image's torch stays
    assert env.verified.startswith("ok") and any(line.endswith(": CUDA check: ok 2.6.0+cu124 12.4 H100") for line in said)

    # the second start reuses the recorded environment: nothing installed, no venv made again
    again, said = start_env(sshd, s)
    assert again.python == env.python and again.reused and len(pip_installs(log)) == 1
    assert any("reusing the image environment" in line for line in said)
    assert not any("checking CUDA" in line for line in said)  # verified once per driver


def test_old_image_torch_gets_the_build_the_driver_supports(sshd, tmp_path: Path):
    log = tmp_path / "pip.log"
    old = image_python(tmp_path / "img" / "python3", log, torch="2.1.0+cu118", cuda="11.8")
    s = settings(tmp_path, nvidia_smi(tmp_path / "smi", H100, driver="535.104.05", cuda="12.2"), old)
    env, said = start_env(sshd, s)
    assert env.kind == "index" and env.index_url == "https://download.pytorch.org/whl/cu118"
    assert "driver 535.104.05 supports CUDA 12.2" in env.reason and "torch 2.1.0+cu118" in env.reason
    installs = pip_installs(log)
    assert installs[0] == ["-q", "--index-url", "https://download.pytorch.org/whl/cu118", "torch>=2.6"]
    assert "torch>=2.6" not in installs[1] and "peft>=0.19" in installs[1]
    assert not json.loads(Path(f"{env.python}.json").read_text())["system_site"]


def test_a_driver_too_old_for_any_build_is_refused(sshd, tmp_path: Path):
    log = tmp_path / "pip.log"
    py = image_python(tmp_path / "img" / "python3", log, torch=None)
    s = settings(tmp_path, nvidia_smi(tmp_path / "smi", H100, driver="470.82.01", cuda="11.4"), py)
    with pytest.raises(RemoteError, match=r"gpu-box .*: check GPU: driver 470.82.01 supports CUDA 11.4 only; "
                                          r"torch>=2.6 needs CUDA 11.8"):
        start_env(sshd, s)
    assert pip_installs(log) == []


@pytest.mark.parametrize("smi_kw, said", [
    ({"gpus": None}, "nvidia-smi finds no GPU"),
    ({"fail": "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."},
     "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
])
def test_a_box_without_a_usable_gpu_refuses_a_gpu_run(sshd, tmp_path: Path, smi_kw, said):
    log = tmp_path / "pip.log"
    py = image_python(tmp_path / "img" / "python3", log)
    s = settings(tmp_path, nvidia_smi(tmp_path / "smi", **smi_kw), py)
    with pytest.raises(RemoteError) as err:
        start_env(sshd, s)
    assert str(err.value).endswith(f": check GPU: {said}; refusing to train here "
                                   "(set train.device = \"cpu\" to run on CPU anyway)")
    assert pip_installs(log) == [] and not (tmp_path / "box").exists()
    env, _ = start_env(sshd, s, device="cpu")  # a CPU run still goes
    assert env.kind == "image" and not env.verified


def test_a_failing_cuda_check_stops_the_start_with_one_line(sshd, tmp_path: Path):
    log = tmp_path / "pip.log"
    py = image_python(tmp_path / "img" / "python3", log, check="RuntimeError: CUDA error: no kernel image is available")
    s = settings(tmp_path, nvidia_smi(tmp_path / "smi", H100), py)
    with pytest.raises(RemoteError) as err:
        start_env(sshd, s)
    line = str(err.value)
    assert "\n" not in line and "CUDA check failed with driver 550.54.15" in line and "torch 2.6.0+cu124" in line
    assert "no kernel image is available" in line and "newer driver" in line
    # not recorded as verified: the next start checks again (and does not install again)
    with pytest.raises(RemoteError, match="CUDA check failed"):
        start_env(sshd, s)
    assert len(pip_installs(log)) == 1


def test_box_json_in_the_run_dir_is_summed_up_for_train_status(sshd, tmp_path: Path):
    log = tmp_path / "pip.log"
    py = image_python(tmp_path / "img" / "python3", log)
    env, _ = start_env(sshd, settings(tmp_path, nvidia_smi(tmp_path / "smi", H100), py))
    run = tmp_path / "run"
    run.mkdir()
    assert box_env.summary(run) is None  # a local run, or one started before box.json
    (run / box_env.BOX_JSON).write_text(json.dumps(env.to_json()))
    assert box_env.summary(run) == (f"2× NVIDIA H100 80GB HBM3, 81559 MiB; driver 550.54.15 (CUDA ≤ 12.4); "
                                    f"image {env.python} (torch 2.6.0+cu124); CUDA check ok")


def test_a_python_named_in_config_needs_the_trainer_stack_not_the_apps_ui(sshd, tmp_path: Path):
    """`remote.python` with torch and the [train] extra but no textual is used as it is (the trainer
    never imports the UI); without transformers it is refused, naming what is missing."""
    log = tmp_path / "pip.log"
    stack = {"transformers": "5.25.0", "peft": "0.19.1", "bitsandbytes": "0.50.2"}
    ready = image_python(tmp_path / "img" / "ready", log, packages=stack)
    s = settings(tmp_path, nvidia_smi(tmp_path / "smi", H100), python=ready)
    s = remote_runs.RemoteSettings(**{**s.__dict__, "trainer_stack": REQS[1:]})
    env, _ = start_env(sshd, s)
    assert env.kind == "configured" and env.python == ready and not pip_installs(log)
    lacking = image_python(tmp_path / "img" / "lacking", log, packages={"peft": "0.19.1", "bitsandbytes": "0.50.2"})
    with pytest.raises(RemoteError, match="missing transformers$"):
        start_env(sshd, remote_runs.RemoteSettings(**{**s.__dict__, "python": lacking}))
