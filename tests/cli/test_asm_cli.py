"""`zelda-tui asm check` as a user runs it: a subprocess, the real Asar (found through
$ZELDA_TUI_ASAR or `[eval] asar`), human and --json output, exit codes, the pre-check fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.asm_corpus import CORPUS, NEEDS_SYMBOLS, SYMBOLS
from tests.conftest import REPO, SMALL_CONFIG
from zelda_tui.backends.asar import find_asar

GOOD = CORPUS / "good_03_sublabels.asm"
GOOD_MD = CORPUS / "good_22_answer.md"
BAD = CORPUS / "bad_01_unknown_mnemonic.asm"
UNRESOLVED = CORPUS / "bad_06_missing_label.asm"


@pytest.fixture(scope="module")
def asar_path() -> str:
    binary = find_asar(cwd=REPO)
    if binary is None:
        pytest.fail("the real Asar binary is missing: run `make asar`")
    return str(binary.path)


def cli(*args: str, cwd: Path, asar: str | None = None, path: str | None = None) -> subprocess.CompletedProcess:
    """The CLI with a controlled environment: no config or Asar from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("ZELDA_TUI_ASAR", "ZELDA_TUI_CONFIG")}
    if asar:
        env["ZELDA_TUI_ASAR"] = asar
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "zelda_tui", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_human_output_one_line_per_file_and_a_summary(tmp_path, asar_path):
    res = cli("asm", "check", str(GOOD), str(BAD), str(UNRESOLVED), cwd=tmp_path, asar=asar_path)
    assert res.returncode == 1, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == f"{GOOD}: assembles (asar)"
    assert lines[1] == f"{BAD}: syntax_error (asar)  snippet:3: error: (Eunknown_command): Unknown command. [LDQ $10]"
    assert lines[2].startswith(f"{UNRESOLVED}: unresolved_label (asar)  snippet:4: error: (Elabel_not_found)")
    assert lines[-1] == "3 checked with Asar 1.91: 1 assembles, 1 syntax_error, 1 unresolved_label"
    assert res.stderr == ""


def test_all_good_exits_0(tmp_path, asar_path):
    res = cli("asm", "check", str(GOOD), str(GOOD_MD), cwd=tmp_path, asar=asar_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == "2 checked with Asar 1.91: 2 assembles"


def test_json_output_and_jsonl_answers_named_by_line(tmp_path, asar_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join([
        json.dumps({"instruction": "x", "output": "```asm\nLDA #$01\nSTA $10\n```"}),
        "{not json",
        "",
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "LDQ #$00"}]}),
        json.dumps({"output": "   "}),
        json.dumps({"instruction": "no answer"}),
    ]) + "\n")
    res = cli("asm", "check", "--json", str(answers), str(BAD), cwd=tmp_path, asar=asar_path)
    assert res.returncode == 1, res.stderr
    data = json.loads(res.stdout)
    assert data["checker"]["checker"] == "asar" and data["checker"]["version"] == "1.91"
    assert data["checker"]["source"] == "env"
    got = [(r["file"], r["verdict"], r["checker"]) for r in data["results"]]
    assert got == [(f"{answers}:1", "assembles", "asar"), (f"{answers}:2", "empty", "asar"),
                   (f"{answers}:4", "syntax_error", "asar"), (f"{answers}:5", "empty", "asar"),
                   (f"{answers}:6", "empty", "asar"), (str(BAD), "syntax_error", "asar")]
    assert data["results"][1]["errors"] == ["line is not valid JSON"]
    assert "no `output`" in data["results"][4]["errors"][0]
    assert data["results"][5]["line"] == 3
    assert data["counts"] == {"assembles": 1, "syntax_error": 2, "empty": 3}


def test_without_asar_the_precheck_runs_and_says_so(tmp_path):
    res = cli("asm", "check", str(GOOD), str(BAD), cwd=tmp_path, path=str(tmp_path))
    assert res.returncode == 1
    assert "Asar not found" in res.stderr and "pre-check" in res.stderr and "make asar" in res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == f"{GOOD}: assembles (precheck)"
    assert lines[1].startswith(f"{BAD}: syntax_error (precheck)  snippet:3: error: (Eunknown_command)")
    assert lines[-1] == "2 checked with the built-in pre-check: 1 assembles, 1 syntax_error"
    data = json.loads(cli("asm", "check", "--json", str(GOOD), cwd=tmp_path, path=str(tmp_path)).stdout)
    assert data["checker"]["checker"] == "precheck" and data["results"][0]["checker"] == "precheck"


def test_precheck_flag_overrides_an_available_asar(tmp_path, asar_path):
    res = cli("asm", "check", "--json", "--precheck", "--jobs", "1", str(GOOD), cwd=tmp_path, asar=asar_path)
    assert res.returncode == 0
    assert json.loads(res.stdout)["results"][0]["checker"] == "precheck"
    assert res.stderr == ""  # asked for: no warning


def workspace(tmp_path: Path, eval_table: str) -> Path:
    cfg = tmp_path / "ws" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text(SMALL_CONFIG + "\n# --- Eval ---\n[eval]\n" + eval_table)
    return cfg


def test_workspace_settings_asar_path_and_symbols(tmp_path, asar_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "hack").mkdir()
    (tmp_path / "ws" / "hack" / "labels.asm").write_text(SYMBOLS.read_text())
    (tmp_path / "ws" / "config.toml").write_text(
        SMALL_CONFIG + f'\n[eval]\nasar = "{asar_path}"\nsymbols = ["hack/labels.asm"]\ntimeout_s = 20\njobs = 2\n')
    res = cli("asm", "check", "--json", str(NEEDS_SYMBOLS), cwd=tmp_path / "ws", path=str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert data["checker"]["source"] == "config"
    assert data["results"][0]["verdict"] == "assembles"


def test_configured_path_that_is_not_executable_exits_2(tmp_path, asar_path):
    cfg = workspace(tmp_path, 'asar = "tools/asar"\n')
    (cfg.parent / "tools").mkdir()
    (cfg.parent / "tools" / "asar").write_text("not a program")
    res = cli("asm", "check", "--config", str(cfg), str(GOOD), cwd=tmp_path, asar=asar_path)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"zelda-tui: error: {cfg.parent / 'tools' / 'asar'}: not an executable file "
                                  "([eval] asar); `chmod +x` it or point [eval] asar at Asar")
    assert res.stdout == ""


def test_bad_eval_settings_name_the_key_and_line(tmp_path):
    cfg = workspace(tmp_path, "timeout_s = \"soon\"\n")
    res = cli("asm", "check", "--config", str(cfg), str(GOOD), cwd=tmp_path)
    assert res.returncode == 2
    line = cfg.read_text().splitlines().index('timeout_s = "soon"') + 1
    assert f"{cfg}:{line} [eval.timeout_s]: `timeout_s` must be a number" in res.stderr
    cfg.write_text(cfg.read_text().replace('timeout_s = "soon"', 'symbols = ["missing.asm"]'))
    res = cli("asm", "check", "--config", str(cfg), str(GOOD), cwd=tmp_path)
    assert res.returncode == 2 and "[eval.symbols]: symbols file not found" in res.stderr


def test_usage_errors_exit_2(tmp_path, asar_path):
    res = cli("asm", "check", str(tmp_path / "nope.asm"), cwd=tmp_path, asar=asar_path)
    assert res.returncode == 2 and "nope.asm: no such file" in res.stderr
    assert cli("asm", "check", cwd=tmp_path).returncode == 2  # no FILE
    assert cli("asm", "check", "--jobs", "0", str(GOOD), cwd=tmp_path).returncode == 2
