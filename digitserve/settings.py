"""Flags and their environment variables: one table per command, one way to read them.

Every command (digits-server, digits-train, digits, the benchmarks) lists its
settings as ``Setting`` rows. ``add_settings`` turns rows into argparse options
whose help shows the variable in brackets and whose default comes from the
variable when it is set (an empty variable counts as unset). A value is
checked alike whether it came from the command line or the environment, and a
bad one is a usage error (exit 2) naming the flag, and the variable when the
value came from there. The README's configuration tables are checked against
these tables (tests/test_settings.py).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

_KIND = {int: "a whole number", float: "a number", str: "text", Path: "a path", bool: "1/true/yes/on or 0/false/no/off"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    """One setting: a flag, its environment variable, or both."""

    flag: str  # "--workers"; "" for a variable that has no flag
    env: str  # "DIGITS_WORKERS"; "" for a flag that has no variable
    default: Any
    help: str
    type: type | None = None  # the value's type when the default does not say it (a default of None)
    minimum: float | None = None
    zero: str = ""  # what 0 means, when it is the minimum and means something ("off", "never")
    choices: tuple = ()
    shown: str | None = None  # the default as help shows it, when str(default) would not say it
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def kind(self) -> type:
        return self.type or type(self.default)

    def convert(self, text: str) -> Any:
        """``text`` as this setting's value, checked; ``ValueError`` says what was expected."""
        text = text.strip()
        if self.kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"expected {_KIND[bool]}, got {text!r}")
            return text.lower() in _TRUE
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"expected {_KIND.get(self.kind, self.kind.__name__)}, got {text!r}") from None
        if self.minimum is not None and value < self.minimum:
            floor = f"0 ({self.zero})" if self.zero else f"{self.minimum:g}"
            raise ValueError(f"must be {floor} or more, got {text}" if self.minimum == 0 or self.zero
                             else f"must be at least {floor}, got {text}")
        if self.choices and value not in self.choices:
            raise ValueError(f"expected {' or '.join(map(str, self.choices))}, got {text!r}")
        return value

    def read(self, environ: Mapping[str, str] | None = None) -> Any:
        """The variable's value, converted and checked, or the default when it is unset or empty.

        For settings without a flag; ``ValueError`` names the variable.
        """
        text = (os.environ if environ is None else environ).get(self.env, "")
        if not text.strip():
            return self.default
        try:
            return self.convert(text)
        except ValueError as exc:
            raise ValueError(f"{self.env}={text!r}: {exc}") from None

    def help_text(self) -> str:
        variable = f" [{self.env}]" if self.env else ""
        if self.kind is bool:
            return f"{self.help}{variable}"
        shown = self.shown
        if shown is None:
            shown = self.zero if self.zero and self.default == 0 else "none" if self.default in ("", None) else self.default
        return f"{self.help}{variable} (default: {shown})"


class _FromVariable(str):
    """A default taken from the environment: argparse converts string defaults
    through the option's type, and this mark lets the error name the variable."""


def _converter(setting: Setting):
    def convert(text: str) -> Any:
        try:
            return setting.convert(text)
        except ValueError as exc:
            where = f"{setting.env}={str(text)!r}: " if isinstance(text, _FromVariable) else ""
            raise argparse.ArgumentTypeError(f"{where}{exc}") from None

    convert.__name__ = setting.kind.__name__  # argparse names the type in some messages
    return convert


def add_settings(parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings: Iterable[Setting],
                 environ: Mapping[str, str] | None = None) -> None:
    """Add each setting that has a flag to ``parser`` (or an argument group of it)."""
    environ = os.environ if environ is None else environ
    for setting in settings:
        if not setting.flag:
            continue
        text = environ.get(setting.env, "") if setting.env else ""
        default = _FromVariable(text) if text.strip() else setting.default
        if setting.kind is bool:
            action = parser.add_argument(setting.flag, action=argparse.BooleanOptionalAction, default=default,
                                         help=setting.help_text())
            # Set after construction: BooleanOptionalAction takes no type, but argparse
            # still converts a string default through it when the flag is not given.
            action.type = _converter(setting)
        else:
            parser.add_argument(setting.flag, type=_converter(setting), default=default,
                                metavar=setting.metavar, help=setting.help_text())


def variables(settings: Iterable[Setting]) -> set[str]:
    """The environment variables a table reads."""
    return {s.env for s in settings if s.env}
