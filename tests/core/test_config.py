"""config.toml: discovery order, validation errors with file:line [key], comment-keeping edits."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from zelda_tui.core import config
from zelda_tui.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_repo_config_describes_the_plan():
    cfg = config.load(REPO / "config.toml")
    assert cfg.model.name == "zelda-16b-v1"
    assert cfg.model.base == "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"
    assert "Qwen/Qwen2.5-Coder-32B-Instruct" in cfg.model.alternatives
    locked = cfg.mix("zelda_16b_mix_v1")
    assert locked.datasets == (
        "vultr_train_full", "vultr_gold_full", "oos_enriched_v1_normalized_notodo",
        "asm_gold_asar_pass_20260102", "nerv_watcher_v1", "expert_router_v1",
    )
    assert (locked.eval_fraction, locked.min_eval_samples, locked.seed) == (0.02, 1, 42)
    assert cfg.mix(cfg.phases[0]).datasets == ("asm_gold_asar_pass_20260102",)
    assert cfg.mix(cfg.phases[1]).datasets == ("vultr_gold_full", "oos_enriched_v1_normalized_notodo")
    assert cfg.mix(cfg.phases[1]).optional == ("nerv_watcher_v1",)
    assert cfg.phases[2] == "zelda_16b_mix_v1"
    raw = cfg.doc.unwrap()
    assert raw["remote"]["training_dir"] == "/opt/training"
    assert raw["backup"]["host"] == "halext-nj"
    assert raw["train"]["checkpoint_every_steps"] == 50
    assert raw["monitoring"] == {
        "gpu_idle_threshold_percent": 5, "gpu_idle_alert_minutes": 15,
        "gpu_idle_shutdown_minutes": 30, "disk_warning_percent": 85, "check_every_s": 60,
    }
    assert raw["budget"]["max_total_usd"] > 0


def test_paths_resolve_relative_to_config_and_datasets_dir(small_ws: Path, tmp_path: Path):
    text = small_ws.read_text().replace('path = "beta.jsonl"', f'path = "{tmp_path}/elsewhere/beta.jsonl"')
    small_ws.write_text(text)
    cfg = config.load(small_ws)
    assert cfg.datasets_dir == small_ws.parent / "datasets"
    assert cfg.dataset("alpha").path == small_ws.parent / "datasets" / "alpha.jsonl"
    assert cfg.dataset("beta").path == tmp_path / "elsewhere" / "beta.jsonl"
    assert cfg.state_path == small_ws.parent / "state.sqlite"


def test_discovery_order(small_ws: Path, tmp_path: Path, monkeypatch):
    other = tmp_path / "other.toml"
    other.write_text(small_ws.read_text())
    monkeypatch.chdir(small_ws.parent)
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    assert config.discover() == small_ws
    monkeypatch.setenv(config.ENV_VAR, str(other))
    assert config.discover() == other
    assert config.discover(str(small_ws)) == small_ws
    monkeypatch.chdir(tmp_path / "datasets")
    monkeypatch.delenv(config.ENV_VAR)
    with pytest.raises(ConfigError, match="no config.toml here"):
        config.discover()
    with pytest.raises(ConfigError, match="missing.toml: config file not found"):
        config.discover(str(tmp_path / "missing.toml"))


def _expect(small_ws: Path, old: str, new: str, pattern: str) -> ConfigError:
    text = small_ws.read_text()
    assert old in text
    small_ws.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        config.load(small_ws)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(small_ws))
    import re
    assert re.search(pattern, message), message
    return info.value


def test_broken_toml_names_the_line(small_ws: Path):
    _expect(small_ws, "seed = 7", "seed = = 7", r"config\.toml:\d+: invalid TOML")


@pytest.mark.parametrize(
    "old,new,pattern",
    [
        ("eval_fraction = 0.1", "eval_fraction = 1.5", r":23 \[mix\.small\.eval_fraction\]: eval_fraction must be between 0 and 1"),
        ("eval_fraction = 0.1", "eval_fraction = 0", r":23 \[mix\.small\.eval_fraction\]"),
        ('datasets = ["alpha", "beta", "gamma"]', 'datasets = ["alpha", "nope"]', r":22 \[mix\.small\.datasets\]: .*unknown dataset 'nope'"),
        ('datasets = ["alpha", "beta", "gamma"]', 'datasets = ["alpha", "alpha"]', r"\[mix\.small\.datasets\]: .*'alpha' twice"),
        ("seed = 7", 'seed = "seven"', r":25 \[mix\.small\.seed\]: `seed` must be an integer, got str 'seven'"),
        ('path = "alpha.jsonl"', "path = 3", r":11 \[datasets\.alpha\.path\]: `path` must be a string"),
        ("max_seq_len = 64", "max_seq_len = -1", r"\[model\.max_seq_len\]: must be > 0"),
        ('datasets_dir = "datasets"', "datasets_dir = []", r":3 \[workspace\.datasets_dir\]"),
    ],
)
def test_bad_values_name_file_line_and_key(small_ws: Path, old: str, new: str, pattern: str):
    _expect(small_ws, old, new, pattern)


def test_duplicate_table_is_reported(small_ws: Path):
    small_ws.write_text(small_ws.read_text() + '\n[datasets.alpha]\npath = "again.jsonl"\n')
    with pytest.raises(ConfigError, match=r"config\.toml.*invalid TOML"):
        config.load(small_ws)


def test_set_mix_round_trip_keeps_comments_and_order(small_ws: Path):
    before = small_ws.read_text()
    cfg = config.load(small_ws)
    mix = cfg.mix("small")
    cfg.set_mix(dataclasses.replace(mix, seed=99, datasets=("beta", "alpha")))
    cfg.set_mix(config.MixSpec(name="new_mix", datasets=("gamma",), eval_fraction=0.5))
    cfg.save()
    after = small_ws.read_text()
    # only the changed values differ; every comment and the table order survive
    assert "# small test workspace" in after and "# the mix under test" in after
    assert 'datasets_dir = "datasets"          # relative to the config file' in after
    assert after.index("[datasets.alpha]") < after.index("[mix.small]") < after.index("[mix.new_mix]")
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert 'datasets = ["beta", "alpha"]' in changed and "seed = 99" in changed
    reloaded = config.load(small_ws)
    assert reloaded.mix("small").seed == 99
    assert reloaded.mix("small").datasets == ("beta", "alpha")
    assert reloaded.mix("new_mix").eval_fraction == 0.5
    # no temp files left beside it
    assert sorted(p.name for p in small_ws.parent.iterdir() if p.name.startswith(".")) == []


def test_unchanged_save_is_byte_identical(small_ws: Path):
    before = small_ws.read_bytes()
    cfg = config.load(small_ws)
    cfg.set_mix(cfg.mix("small"))
    cfg.save()
    assert small_ws.read_bytes() == before


def test_set_mix_refuses_bad_values_and_leaves_file(small_ws: Path):
    before = small_ws.read_bytes()
    cfg = config.load(small_ws)
    with pytest.raises(ConfigError, match="eval_fraction must be between 0 and 1"):
        cfg.set_mix(dataclasses.replace(cfg.mix("small"), eval_fraction=1.0))
    with pytest.raises(ConfigError, match="unknown dataset 'zzz'"):
        cfg.set_mix(dataclasses.replace(cfg.mix("small"), datasets=("zzz",)))
    assert small_ws.read_bytes() == before


def test_save_through_symlink_updates_target(small_ws: Path, tmp_path: Path):
    link = tmp_path / "link.toml"
    os.symlink(small_ws, link)
    cfg = config.load(link)
    cfg.set_mix(dataclasses.replace(cfg.mix("small"), seed=5))
    cfg.save()
    assert link.is_symlink()
    assert config.load(small_ws).mix("small").seed == 5


def test_keymap_from_config(small_ws: Path):
    small_ws.write_text(small_ws.read_text() + '\n[keys]\n"mix.build" = "f5"\n')
    assert config.load(small_ws).keys.keymap == {"mix.build": "f5"}


# --- [budget], [monitoring], [providers]: typed at load (issue 12, item 6) ----------------
@pytest.mark.parametrize(
    "extra,pattern",
    [
        ('[budget]\nmax_total_usd = "150"\n', r":28 \[budget\.max_total_usd\]: `max_total_usd` must be a number, got str '150'"),
        ("[budget]\nmax_hourly_usd = -1\n", r":28 \[budget\.max_hourly_usd\]: .*must be a number >= 0, got -1"),
        ("[budget]\nmax_runtime_hours = 0\n", r":28 \[budget\.max_runtime_hours\]: .*must be a number > 0"),
        ("[budget]\nmax_total_usd = nan\n", r":28 \[budget\.max_total_usd\]: .*got nan"),
        ('[budget]\non_idle = "shutdown"\n', r":28 \[budget\.on_idle\]: `on_idle` must be \"alert\" or \"destroy\", got 'shutdown'"),
        ("[budget]\nmax_totl_usd = 10\n", r":28 \[budget\.max_totl_usd\]: unknown key `max_totl_usd` \(known: max_total_usd, "),
        ('[monitoring]\ndisk_warning_percent = "x"\n', r":28 \[monitoring\.disk_warning_percent\]: .*must be a number, got str 'x'"),
        ("[monitoring]\ndisk_warning_percent = 120\n", r"\[monitoring\.disk_warning_percent\]: .*<= 100, got 120"),
        ('[monitoring]\ngpu_idle_shutdown_minutes = "30"\n', r":28 \[monitoring\.gpu_idle_shutdown_minutes\]: .*must be a number"),
        ("[monitoring]\ncheck_every_s = 0\n", r"\[monitoring\.check_every_s\]: .*> 0"),
        ("[monitoring]\ngpu_idle_threshold_percent = true\n", r"\[monitoring\.gpu_idle_threshold_percent\]: .*got bool True"),
        ('[providers.vast]\nbase_url = "http://api.example.com/api/v0"\n',
         r":28 \[providers\.vast\.base_url\]: plain http:// to api\.example\.com would send the API key in clear"),
        ('[providers.vultr]\nbase_url = "ftp://x.example/v2"\n', r"\[providers\.vultr\.base_url\]: `base_url` must be an https:// URL"),
        ('[providers.vast]\ndisk_gb = "200"\n', r"\[providers\.vast\.disk_gb\]: `disk_gb` must be an integer"),
        ("[providers.vultr]\nimage = \"x\"\n", r"\[providers\.vultr\.image\]: unknown key `image` \(known: base_url, ssh_key_id\)"),
        ("[providers.gcp]\nproject = 3\n", r"\[providers\.gcp\.project\]: `project` must be a string"),
        ("[providers.aws]\nbase_url = \"https://x\"\n", r":27 \[providers\.aws\]: unknown provider 'aws'"),
    ],
)
def test_money_and_monitoring_values_are_checked_at_load(small_ws: Path, extra: str, pattern: str):
    small_ws.write_text(small_ws.read_text() + "\n" + extra)  # the table header lands on line 27
    _expect(small_ws, "seed = 7", "seed = 7", pattern)


def test_money_and_monitoring_values_typed_with_defaults_in_one_place(small_ws: Path):
    cfg = config.load(small_ws)
    assert cfg.budget == config.BudgetSpec(max_total_usd=None, max_hourly_usd=None, max_runtime_hours=None, on_idle="alert")
    assert cfg.monitoring.gpu_idle_shutdown_minutes == 30 and cfg.monitoring.disk_warning_percent == 85
    small_ws.write_text(small_ws.read_text() + (
        '\n[budget]\nmax_total_usd = 150\non_idle = "destroy"\n\n[monitoring]\ngpu_idle_shutdown_minutes = 0.5\n'
        '\n[providers.vast]\nbase_url = "http://127.0.0.1:8123/api/v0"\ndisk_gb = 100\n'
        '\n[providers.vultr]\nbase_url = "http://[::1]:9/v2"\n\n[providers.gcp]\nbase_url = "https://compute.example/v1"\n'))
    cfg = config.load(small_ws)
    assert cfg.budget.max_total_usd == 150.0 and isinstance(cfg.budget.max_total_usd, float)
    assert cfg.budget.on_idle == "destroy" and cfg.monitoring.gpu_idle_shutdown_minutes == 0.5
    assert cfg.providers["vast"].base_url == "http://127.0.0.1:8123/api/v0" and cfg.providers["vast"].disk_gb == 100
    assert cfg.providers["vultr"].base_url == "http://[::1]:9/v2"
    assert cfg.providers["gcp"].base_url == "https://compute.example/v1" and cfg.providers["gcp"].project is None


def test_repo_config_sections_are_valid():
    cfg = config.load(REPO / "config.toml")
    assert cfg.budget.max_total_usd == 150.0 and cfg.budget.on_idle == "alert"
    assert cfg.monitoring == config.MonitoringSpec()  # the plan's values are the defaults


# --- names become folders (issue 12, item 7) ------------------------------------------------
@pytest.mark.parametrize(
    "old,new,pattern",
    [
        ("[mix.small]", '[mix."."]', r":21 \[mix\.\"\.\"\]: mix name '\.' is not a name"),
        ("[mix.small]", '[mix.".."]', r":21 \[mix\.\"\.\.\"\]: mix name '\.\.' is not a name"),
        ("[mix.small]", '[mix."../datasets"]', r":21 \[mix\.\"\.\./datasets\"\]: mix name '\.\./datasets' contains a path separator"),
        ("[mix.small]", '[mix."a\\\\b"]', r":21 .*mix name 'a\\\\b' contains a path separator"),
        ("[mix.small]", '[mix.".hidden"]', r":21 .*mix name '\.hidden' starts with a dot"),
        ("[mix.small]", '[mix."tab\\there"]', r":21 .*mix name 'tab\\there' contains a control character"),
        ("[mix.small]", '[mix.""]', r":21 .*mix name '' is empty"),
        ("[datasets.beta]", '[datasets."../beta"]', r":14 \[datasets\.\"\.\./beta\"\]: dataset name '\.\./beta' contains a path"),
        ('name = "tiny"', 'name = "a/b"', r":6 \[model\.name\]: model name 'a/b' contains a path separator"),
        ('name = "tiny"', 'name = ".."', r":6 \[model\.name\]: model name '\.\.' is not a name"),
    ],
)
def test_names_that_would_escape_their_folder_are_refused(small_ws: Path, old: str, new: str, pattern: str):
    _expect(small_ws, old, new, pattern)


def test_app_cannot_save_a_mix_under_a_bad_name(small_ws: Path):
    cfg = config.load(small_ws)
    with pytest.raises(ConfigError, match="mix name '../x' contains a path separator"):
        cfg.set_mix(dataclasses.replace(cfg.mix("small"), name="../x"))


def test_locked_mix_is_never_rewritten(small_ws: Path):
    small_ws.write_text(small_ws.read_text().replace("seed = 7", 'seed = 7\ndescription = "LOCKED: what v1 trained on"'))
    cfg = config.load(small_ws)
    assert cfg.mix("small").locked
    before = small_ws.read_bytes()
    with pytest.raises(ConfigError, match="mix 'small' is locked .* save the edits as a new mix"):
        cfg.set_mix(dataclasses.replace(cfg.mix("small"), eval_fraction=0.05))
    cfg.set_mix(cfg.mix("small"))  # unchanged: fine
    cfg.set_mix(dataclasses.replace(cfg.mix("small"), name="small_v2", eval_fraction=0.05, locked=False, description=""))
    cfg.save()
    reloaded = config.load(small_ws)
    assert reloaded.mix("small") == config.load(small_ws).mix("small") and reloaded.mix("small").eval_fraction == 0.1
    assert reloaded.mix("small_v2").eval_fraction == 0.05 and not reloaded.mix("small_v2").locked
    assert small_ws.read_bytes().startswith(before)
    small_ws.write_text(small_ws.read_text().replace('description = "LOCKED: what v1 trained on"', "locked = false"))
    assert not config.load(small_ws).mix("small").locked


# --- [remote], [backup], [eval], [workspace]: typed at load (issue 14, item 5) ----------------
@pytest.mark.parametrize(
    "extra,pattern",
    [
        ('[remote]\ntraining_dir = "opt/training"\n', r":28 \[remote\.training_dir\]: `training_dir` must be an absolute path on the box"),
        ("[remote]\ntraining_dir = 3\n", r":28 \[remote\.training_dir\]: `training_dir` must be a string, got int 3"),
        ('[remote]\nhosts = "gpu-box"\n', r":28 \[remote\.hosts\]: `hosts` must be a list of strings"),
        ('[remote]\nconnect_timeout_s = "15"\n', r":28 \[remote\.connect_timeout_s\]: `connect_timeout_s` must be a number, got str"),
        ("[remote]\nconnect_timeout_s = 0\n", r":28 \[remote\.connect_timeout_s\]: .*must be a number > 0, got 0"),
        ("[remote]\nssh_config = false\n", r":28 \[remote\.ssh_config\]: `ssh_config` must be a string, got bool False"),
        ('[remote]\ntraning_dir = "/opt"\n', r":28 \[remote\.traning_dir\]: unknown key `traning_dir` \(known: hosts, training_dir, "),
        ("[backup]\npath = 5\n", r":28 \[backup\.path\]: `path` must be a string, got int 5"),
        ('[backup]\nrsync = "ssh"\n', r":28 \[backup\.rsync\]: unknown key `rsync` \(known: host, path, rsync_ssh\)"),
        ('[eval]\ntimeout_s = "soon"\n', r":28 \[eval\.timeout_s\]: `timeout_s` must be a number, got str 'soon'"),
        ("[eval]\ntimeout_s = -1\n", r":28 \[eval\.timeout_s\]: `timeout_s` must be a number of seconds > 0, got -1"),
        ("[eval]\njobs = 0\n", r":28 \[eval\.jobs\]: `jobs` must be an integer >= 1, got 0"),
        ("[eval]\njobs = 1.5\n", r":28 \[eval\.jobs\]: `jobs` must be an integer, got float 1.5"),
        ("[eval]\nasar = 1\n", r":28 \[eval\.asar\]: `asar` must be a string"),
        ('[eval]\nsymbols = ["missing.asm"]\n', r":28 \[eval\.symbols\]: symbols file not found: .*missing\.asm"),
        ("[eval]\nsymbols = [1]\n", r":28 \[eval\.symbols\]: `symbols` must be a list of strings"),
        ('[eval]\nasr = "x"\n', r":28 \[eval\.asr\]: unknown key `asr` \(known: asar, symbols, timeout_s, jobs, "
                                 r"during_training, prompts, samples, max_new_tokens\)"),
        ('[eval]\nduring_training = "sometimes"\n', r":28 \[eval\.during_training\]: `during_training` must be one "
                                                   r"of off, after, alongside, got 'sometimes'"),
        ('[keys]\n"mix.build" = 5\n', r":28 \[keys\.mix\.build\]: key bindings are strings"),
        ('[recovery]\nauto = "yes"\n', r":28 \[recovery\.auto\]: `auto` must be true/false, got str 'yes'"),
        ("[recovery]\nlost_after_minutes = 0\n", r":28 \[recovery\.lost_after_minutes\]: .*must be a number > 0, got 0"),
        ("[recovery]\nmax_recoveries = -1\n", r":28 \[recovery\.max_recoveries\]: `max_recoveries` must be >= 0, got -1"),
        ("[recovery]\nlost_after = 5\n", r":28 \[recovery\.lost_after\]: unknown key `lost_after` \(known: sync_checkpoints, "
                                          r"lost_after_minutes, auto, max_recoveries\)"),
    ],
)
def test_remote_backup_eval_values_are_checked_at_load(small_ws: Path, extra: str, pattern: str):
    small_ws.write_text(small_ws.read_text() + "\n" + extra)  # the table header lands on line 27
    _expect(small_ws, "seed = 7", "seed = 7", pattern)


def test_workspace_unknown_key_is_refused(small_ws: Path):
    _expect(small_ws, 'datasets_dir = "datasets"', 'datasets_dir = "datasets"\ndataset_dir = "x"',
            r":4 \[workspace\.dataset_dir\]: unknown key `dataset_dir` \(known: datasets_dir\)")


def test_remote_backup_eval_typed_with_paths_resolved_against_the_workspace(small_ws: Path):
    cfg = config.load(small_ws)
    assert (cfg.remote, cfg.backup, cfg.eval) == (config.RemoteSpec(), config.BackupSpec(), config.EvalSpec())
    ws = small_ws.parent
    (ws / "hack").mkdir()
    (ws / "hack" / "labels.asm").write_text("Label = $7E0000\n")
    small_ws.write_text(small_ws.read_text() + (
        '\n[remote]\nhosts = ["gpu-box"]\ntraining_dir = "/srv/t"\nssh_config = "ssh/config"\n'
        'known_hosts = "~/kh"\nconnect_timeout_s = 5\n'
        '\n[backup]\nhost = "nas"\npath = "/srv/backup"\n'
        '\n[eval]\nasar = "tools/asar"\nsymbols = "hack/labels.asm"\ntimeout_s = 20\njobs = 2\n'))
    cfg = config.load(small_ws)
    assert cfg.remote == config.RemoteSpec(hosts=("gpu-box",), training_dir="/srv/t", ssh_config=ws / "ssh" / "config",
                                           known_hosts=Path("~/kh").expanduser(), connect_timeout_s=5.0)
    assert cfg.backup == config.BackupSpec(host="nas", path="/srv/backup", rsync_ssh="")
    assert cfg.eval == config.EvalSpec(asar=ws / "tools" / "asar", symbols=(ws / "hack" / "labels.asm",), timeout_s=20.0, jobs=2)


def test_recovery_defaults_and_values(small_ws: Path):
    """[recovery] (#17): one default per key, typed at load."""
    assert config.load(small_ws).recovery == config.RecoverySpec(sync_checkpoints=True, lost_after_minutes=10.0,
                                                                 auto=False, max_recoveries=3)
    small_ws.write_text(small_ws.read_text() + "\n[recovery]\nsync_checkpoints = false\nlost_after_minutes = 2.5\n"
                                               "auto = true\nmax_recoveries = 0\n")
    assert config.load(small_ws).recovery == config.RecoverySpec(False, 2.5, True, 0)
