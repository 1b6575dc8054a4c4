"""Settings as documented dataclass fields: each with its help line, the paper's value where it has one, and
the values it accepts, checked in one place (`check_fields`). `TrainConfig` and the scoring settings are built
this way, and the command line makes one option per field from the same metadata."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import field
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    paper: Any = None,
    name_like: bool = False,
) -> Any:
    """A field with its documentation and allowed values: `choices`, or a range [low, high] (open ends
    with low_open/high_open); `name_like` asks for a plain file name."""
    meta = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "paper": paper,
        "name_like": name_like,
    }
    return field(default=default, metadata=meta)


def allowed(meta: Mapping[str, Any]) -> str:
    """What a field accepts, in words (for messages and help)."""
    if meta["choices"]:
        return "one of " + ", ".join(map(str, meta["choices"]))
    parts = []
    if meta["low"] is not None:
        parts.append(f"{'>' if meta['low_open'] else '>='} {meta['low']:g}")
    if meta["high"] is not None:
        parts.append(f"{'<' if meta['high_open'] else '<='} {meta['high']:g}")
    if meta["name_like"]:
        parts.append("a plain folder name (letters, digits, . _ + -)")
    return " and ".join(parts) or "any value"


def check_fields(obj: Any) -> None:
    """Check every field of a settings dataclass against its metadata; the message names the field (as
    `name`, which the command line shows as its option), the value and what is allowed."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        base, optional = field_type(hints[f.name])
        name = f"`{f.name}`"
        if value is None and optional:
            continue
        if not _has_type(value, base):
            raise ValueError(f"invalid {name} {value!r}: expected {base.__name__}")
        bad = (meta["choices"] is not None and value not in meta["choices"]) or _out_of_range(value, meta)
        if bad or (meta["name_like"] and not _NAME.match(str(value))):
            if meta["choices"]:
                raise ValueError(f"invalid {name} {value!r}; valid values: {', '.join(map(str, meta['choices']))}")
            raise ValueError(f"invalid {name} {value!r}: must be {allowed(meta)}")


def field_type(hint: Any) -> tuple[type, bool]:
    """(the base type, whether None is allowed) of a field's annotation."""
    args = typing.get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _has_type(value: Any, base: type) -> bool:
    if base in (int, float):  # an int is a float too; a bool is neither
        return isinstance(value, (int, base)) and not isinstance(value, bool)
    return isinstance(value, base)


def _out_of_range(value: Any, meta: Mapping[str, Any]) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if value != value:  # NaN
        return True
    low, high = meta["low"], meta["high"]
    return (low is not None and (value <= low if meta["low_open"] else value < low)) or (
        high is not None and (value >= high if meta["high_open"] else value > high)
    )
