"""The real Asar 1.91 against the corpus, discovery, and the bad cases: no binary, a configured path
that is not Asar, a hang, a crash, a batch that must finish in order.

The real binary is found by the validator's own discovery (`.tools/asar/...` from `make asar`);
without it these tests fail, they do not skip. The hang and crash stand-ins are small shell
scripts of ours that answer `--version` like Asar and then misbehave (or run the real Asar)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.asm_corpus import NEEDS_SYMBOLS, SYMBOLS, cases
from tests.conftest import REPO
from zelda_tui.backends.asar import (AsarBinary, check_asar, find_asar, locate_asar, run_asar, validate,
                                     validate_many)
from zelda_tui.asm.code import extract_code
from zelda_tui.asm.precheck import MODES, precheck
from zelda_tui.core.errors import ZeldaError

CASES = cases()


@pytest.fixture(scope="session")
def asar() -> AsarBinary:
    binary = find_asar(cwd=REPO)
    if binary is None:
        pytest.fail("the real Asar binary is missing: run `make asar` (scripts/get-asar.sh fetches it into .tools/asar/)")
    assert binary.version == "1.91"
    return binary


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def impostor(tmp_path: Path, asar: AsarBinary, name: str = "asar") -> Path:
    """Answers `--version` like Asar, hangs on a snippet containing HANG, kills itself with
    SIGSEGV on CRASH, and otherwise runs the real Asar."""
    return script(tmp_path / name, f"""\
case "$1" in --version) exec "{asar.path}" --version;; esac
if grep -q HANG patch.asm; then sleep 60; fi
if grep -q CRASH patch.asm; then kill -SEGV $$; fi
exec "{asar.path}" "$@"
""")


# --------------------------------------------------------------------------- the corpus


def test_corpus_with_the_real_binary(asar):
    verdicts = validate_many([c.text for c in CASES], asar)
    wrong = [(c.id, c.expect, v.verdict, v.errors[:2]) for c, v in zip(CASES, verdicts) if v.verdict != c.expect]
    assert not wrong
    assert {v.checker for v in verdicts} == {"asar"}


def test_error_lines_are_the_snippets_own(asar):
    case = next(c for c in CASES if c.id == "bad_01_unknown_mnemonic")
    v = validate(case.text, asar)
    assert (v.verdict, v.line) == ("syntax_error", 3)  # `LDQ $10` is line 3 of the file
    assert v.errors == ["snippet:3: error: (Eunknown_command): Unknown command. [LDQ $10]"]
    md = next(c for c in CASES if c.id == "bad_30_unclosed_fence")
    v = validate(md.text, asar)
    assert extract_code(md.text).split("\n")[v.line - 1].strip() == "STA ($"


def test_symbols_files_resolve_the_hacks_labels(asar):
    code = NEEDS_SYMBOLS.read_text()
    assert validate(code, asar).verdict == "unresolved_label"
    v = validate(code, asar, symbols=[SYMBOLS])
    assert (v.verdict, v.errors) == ("assembles", [])
    # the pre-check with the same file agrees (services pass it the parsed symbols)
    assert validate_many([code], None, symbols=[SYMBOLS])[0].verdict == "assembles"


def test_precheck_agrees_with_asar_on_addressing_modes(asar):
    """Every mnemonic with the common operand shapes: Asar and the pre-check must agree."""
    operands = ["", "A", "#$12", "#$1234", "$12", "$1234", "$123456", "$12,x", "$1234,y", "$123456,x", "($12)",
                "($12,x)", "($12),y", "[$12],y", "$12,s", "($1234)", "($1234,x)", "[$1234]", "$7E,$7F"]
    # `rep X` without `#` is Asar's deprecated repeat command, not the opcode: left out
    lines = [f"{mn.upper()} {op}".rstrip() for mn in sorted(MODES) for op in operands
             if mn != "rep" or not op or op[0] == "#"]
    snippets = [f"P:\n{line}\nRTS" for line in lines]
    real = validate_many(snippets, asar)
    ours = [precheck(s) for s in snippets]
    differ = [(line, r.verdict, o.verdict, r.errors[:1]) for line, r, o in zip(lines, real, ours)
              if (r.verdict == "assembles") != (o.verdict == "assembles")]
    assert not differ, differ[:10]
    assert sum(r.verdict == "assembles" for r in real) > 250  # the sample exercises both outcomes
    assert sum(r.verdict == "syntax_error" for r in real) > 1000


# --------------------------------------------------------------------------- discovery


def test_discovery_order_and_sources(asar, tmp_path):
    assert locate_asar(cwd=REPO, env={}, use_package=False).binary.source == ".tools"
    assert locate_asar(env={"ZELDA_TUI_ASAR": str(asar.path)}, cwd=tmp_path).binary.source == "env"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "asar").symlink_to(asar.path)
    found = locate_asar(env={"PATH": str(bindir)}, cwd=tmp_path, use_package=False).binary
    assert (found.source, found.path) == ("PATH", bindir / "asar")
    assert locate_asar(asar.path, env={"ZELDA_TUI_ASAR": "/nonexistent"}).binary.source == "config"  # config first


def test_an_asar_on_path_that_is_not_asar_is_skipped_and_said(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script(bindir / "asar", 'echo "Usage: asar [options] [command]  (electron archive tool)"\n')
    found = locate_asar(env={"PATH": str(bindir)}, cwd=REPO, use_package=False)
    assert found.binary is not None and found.binary.source == ".tools"
    assert "not Asar" in found.skipped[0] and "electron" in found.skipped[0]


def test_asar_missing_falls_back_to_the_precheck_labelled(tmp_path):
    search = locate_asar(env={"PATH": str(tmp_path)}, cwd=tmp_path, use_package=False)
    assert search.binary is None
    assert "make asar" in search.describe()
    good = next(c for c in CASES if c.id == "good_02_lda_all_modes")
    bad = next(c for c in CASES if c.id == "bad_01_unknown_mnemonic")
    verdicts = validate_many([good.text, bad.text, ""], search.binary)
    assert [(v.verdict, v.checker) for v in verdicts] == [
        ("assembles", "precheck"), ("syntax_error", "precheck"), ("empty", "precheck")]
    assert validate(good.text, None).checker == "precheck"


@pytest.mark.parametrize("kind", ["missing", "not_executable", "directory", "not_asar", "hangs"])
def test_a_configured_path_that_is_not_asar_is_a_clear_error(tmp_path, monkeypatch, kind):
    path = tmp_path / "tools" / "asar"
    path.parent.mkdir()
    if kind == "not_executable":
        path.write_text("#!/bin/sh\necho Asar 1.91\n")
    elif kind == "directory":
        path.mkdir()
    elif kind == "not_asar":
        script(path, "echo 'GNU assembler 2.42'\n")
    elif kind == "hangs":
        script(path, "sleep 60\n")
    import zelda_tui.backends.asar as mod

    monkeypatch.setattr(mod, "VERSION_TIMEOUT_S", 1.0)  # the hanging one: wait 1 s, not 10
    with pytest.raises(ZeldaError) as err:
        locate_asar(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "[eval] asar" in msg and err.value.exit_code == 2
    assert {"missing": "no such file", "not_executable": "not an executable", "directory": "not an executable",
            "not_asar": "not Asar", "hangs": "did not answer"}[kind] in msg


def test_the_version_check_runs_once_per_binary(tmp_path, asar):
    counter = tmp_path / "calls"
    fake = script(tmp_path / "asar", f'echo x >> "{counter}"\nexec "{asar.path}" "$@"\n')
    check_asar(fake)
    check_asar(fake)
    assert counter.read_text().count("x") == 1


# --------------------------------------------------------------------------- hang, crash, batch


def test_a_hang_is_a_timeout_and_is_killed(tmp_path, asar):
    fake = check_asar(impostor(tmp_path, asar))
    t0 = time.monotonic()
    v = run_asar("LDA #$00 ; HANG", fake, timeout_s=1.0)
    assert time.monotonic() - t0 < 10
    assert (v.verdict, v.checker) == ("timeout", "asar")
    assert "did not finish within 1 s" in v.errors[0]


def test_a_signal_death_is_a_crash(tmp_path, asar):
    fake = check_asar(impostor(tmp_path, asar))
    v = run_asar("LDA #$00 ; CRASH", fake)
    assert v.verdict == "crash" and "signal 11" in v.errors[0]
    silent = check_asar(script(tmp_path / "asar2", f'case "$1" in --version) exec "{asar.path}" --version;; esac\nexit 3\n'))
    v = run_asar("LDA #$00", silent)
    assert v.verdict == "crash" and "status 3 without an error line" in v.errors[0]


def test_a_binary_gone_mid_batch_is_a_crash_not_an_exception(tmp_path, asar):
    fake = check_asar(impostor(tmp_path, asar))
    fake.path.unlink()
    v = run_asar("LDA #$00", fake)
    assert v.verdict == "crash" and "cannot run" in v.errors[0]


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_batch_keeps_order_and_one_failure_never_stops_it(tmp_path, asar, executor):
    fake = check_asar(impostor(tmp_path, asar))
    good = next(c for c in CASES if c.id == "good_03_sublabels").text
    answers = [good, "LDA #$00 ; HANG", "```asm\nLDQ $10\n```", "LDA #$00 ; CRASH", "", "JSL Nowhere", good]
    t0 = time.monotonic()
    verdicts = validate_many(answers, fake, jobs=2, timeout_s=1.5, executor=executor)
    assert time.monotonic() - t0 < 30
    assert [v.verdict for v in verdicts] == ["assembles", "timeout", "syntax_error", "crash", "empty",
                                             "unresolved_label", "assembles"]
    assert {v.checker for v in verdicts} == {"asar"}


def test_no_temp_dirs_left_behind(asar, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    validate_many(["RTS"] * 6, asar, jobs=3)
    validate("RTS", asar)
    assert os.listdir(tmp_path) == []
