"""[keys] in config.toml: typed at load like every table; a bad key name or an id that no binding has is a
one-line file:line error (Textual would take either silently, and the key would just do nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.app import ZeldaApp
from zelda_tui.core import config
from zelda_tui.core.errors import ConfigError
from zelda_tui.services import build_services


def with_keys(small_ws: Path, body: str) -> int:
    """Append `[keys]` + body; the line number of the body's first line."""
    text = small_ws.read_text()
    small_ws.write_text(text + "\n[keys]\n" + body)
    return len(text.splitlines()) + 3


def test_keys_are_a_typed_table_with_both_spellings_of_an_id(small_ws: Path):
    with_keys(small_ws, '"mix.build" = "f5"\nruns.stop = "ctrl+x, f8"\n')
    keys = config.load(small_ws).keys
    assert keys.keymap == {"mix.build": "f5", "runs.stop": "ctrl+x,f8"}  # spaces after commas dropped
    assert [b.binding_id for b in keys.bindings] == ["mix.build", "runs.stop"]
    assert re.search(r"config\.toml:\d+ \[keys\.runs\.stop\]$", keys.bindings[1].where)


@pytest.mark.parametrize(
    "body,pattern",
    [
        ('"mix.build" = 5\n', r"\[keys\.mix\.build\]: key bindings are strings like \"f1\" or \"ctrl\+b\", got int"),
        ('"mix.build" = "?"\n', r"\[keys\.mix\.build\]: '\?' is not a key name: use names like \"f5\", \"ctrl\+b\" "
                                r"or \"question_mark\""),
        ('"mix.build" = "f5,,f6"\n', r"\[keys\.mix\.build\]: '' is not a key name"),
        ('"mix.build" = "ctrl+"\n', r"\[keys\.mix\.build\]: 'ctrl\+' is not a key name"),
        ('f5 = "mix.build"\n', r"\[keys\.f5\]: 'f5' is not a binding id: ids look like \"mix\.build\""),
    ],
)
def test_a_bad_key_binding_names_its_line(small_ws: Path, body: str, pattern: str):
    line = with_keys(small_ws, body)
    with pytest.raises(ConfigError) as info:
        config.load(small_ws)
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message
    assert re.match(re.escape(f"{small_ws}:{line} ") + pattern, message), message


def test_a_keys_subtable_is_located_too(small_ws: Path):
    line = with_keys(small_ws, '[keys.runs]\nstop = "!"\n') + 1
    with pytest.raises(ConfigError, match=re.escape(f"{small_ws}:{line} [keys.runs.stop]: '!' is not a key name")):
        config.load(small_ws)


def test_an_id_that_no_binding_has_is_refused_before_the_app_opens(small_ws: Path):
    line = with_keys(small_ws, '"mix.build" = "f5"\n"mix.buidl" = "f6"\n') + 1
    services = build_services(small_ws)
    try:
        with pytest.raises(ConfigError) as info:
            ZeldaApp(services)
    finally:
        services.close()
    assert str(info.value) == (f"{small_ws}:{line} [keys.mix.buidl]: unknown binding id 'mix.buidl': did you mean "
                               "'mix.build'? press ? in the app to see every key with its id")


def test_the_tui_command_says_so_in_one_line_and_exits_2(small_ws: Path):
    line = with_keys(small_ws, '"runs.stopp" = "f8"\n')
    res = run_cli("--config", str(small_ws))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        f"zelda-tui: error: {small_ws}:{line} [keys.runs.stopp]: unknown binding id 'runs.stopp': "
        "did you mean 'runs.stop'? press ? in the app to see every key with its id"]
