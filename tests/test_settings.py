"""One way for settings: flags and variables from tables, and the README's tables checked against them."""

from __future__ import annotations

import argparse
import re

import pytest

from bench.common import DATA
from clients.cli import CONNECTION
from clients.connection import SECURITY
from digitserve.settings import Setting, add_settings, variables
from server.settings import SETTINGS as SERVER
from tests.conftest import ROOT
from trainer.main import NOTIFY, SETTINGS as TRAINER
from trainer.mnist import CACHE_DIR, MIRROR_LIST

TABLES = {"server": SERVER, "clients": CONNECTION + SECURITY, "trainer": TRAINER + NOTIFY + SECURITY,
          "trainer (no flag)": (CACHE_DIR, MIRROR_LIST), "bench": DATA}
WORKERS = Setting("--workers", "DIGITS_WORKERS", 8, "threads", minimum=1)
AGE = Setting("--age", "DIGITS_AGE", 0.0, "seconds", minimum=0, zero="never")
SECURE = Setting("--secure", "DIGITS_SECURE", False, "TLS")


def parse(argv: list[str], environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="example")
    add_settings(parser, (WORKERS, AGE, SECURE), environ)
    return parser.parse_args(argv)


def test_a_variable_sets_the_default_and_the_flag_wins():
    assert parse([], {}).workers == 8
    assert parse([], {"DIGITS_WORKERS": "3"}).workers == 3
    assert parse(["--workers", "5"], {"DIGITS_WORKERS": "3"}).workers == 5
    assert parse([], {"DIGITS_WORKERS": ""}).workers == 8  # empty counts as unset
    assert parse([], {"DIGITS_SECURE": "yes"}).secure is True
    assert parse(["--no-secure"], {"DIGITS_SECURE": "1"}).secure is False


@pytest.mark.parametrize("argv, environ, message", [
    ([], {"DIGITS_WORKERS": "many"}, "argument --workers: DIGITS_WORKERS='many': expected a whole number"),
    (["--workers", "many"], {}, "argument --workers: expected a whole number, got 'many'"),
    ([], {"DIGITS_WORKERS": "0"}, "argument --workers: DIGITS_WORKERS='0': must be at least 1, got 0"),
    (["--age", "-1"], {}, "argument --age: must be 0 (never) or more, got -1"),
    ([], {"DIGITS_SECURE": "maybe"}, "DIGITS_SECURE='maybe': expected 1/true/yes/on or 0/false/no/off"),
])
def test_a_bad_value_is_a_usage_error_naming_the_flag_and_the_variable_it_came_from(argv, environ, message, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(argv, environ)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_variable_is_ignored_when_the_flag_replaces_it():
    assert parse(["--workers", "2"], {"DIGITS_WORKERS": "many"}).workers == 2


def test_help_names_each_variable_and_default():
    parser = argparse.ArgumentParser(prog="example")
    add_settings(parser, (WORKERS, AGE), {})
    text = " ".join(parser.format_help().split())
    assert "threads [DIGITS_WORKERS] (default: 8)" in text and "seconds [DIGITS_AGE] (default: never)" in text


def test_a_variable_without_a_flag_reads_and_checks_like_one():
    assert CACHE_DIR.read({}) is None and str(CACHE_DIR.read({"DIGITS_CACHE_DIR": "/tmp/c"})) == "/tmp/c"
    with pytest.raises(ValueError, match="DIGITS_WORKERS='x': expected a whole number"):
        WORKERS.read({"DIGITS_WORKERS": "x"})


def _readme_tables() -> list[list[list[str]]]:
    """The tables of the README's Configuration section, as rows of cells."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    tables, rows = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            tables.append(rows[2:])  # without the header and its rule
            rows = []
    return tables


def _ticked(cell: str, prefix: str) -> list[str]:
    return [name for name in re.findall(r"`([^`]+)`", cell) if name.startswith(prefix)]


def test_the_readme_server_table_is_the_servers_table():
    server_rows = _readme_tables()[0]
    documented = {pair for row in server_rows for pair in zip(_ticked(row[0], "--"), _ticked(row[1], ""))}
    assert documented == {(s.flag, s.env) for s in SERVER}


def test_every_variable_in_the_readme_is_read_and_every_one_read_is_in_the_readme():
    variable_rows = _readme_tables()[1]
    documented = {name: row[1] for row in variable_rows for name in _ticked(row[0], "")}
    others = {user: table for user, table in TABLES.items() if user != "server"}  # the first table's
    read = {name: {user.split()[0] for user, table in others.items() if name in variables(table)}
            for name in set().union(*map(variables, others.values()))}
    assert set(documented) == set(read)
    for name, users in read.items():
        assert users <= set(re.split(r",\s*", documented[name])), f"README: {name} is also used by {users}"
