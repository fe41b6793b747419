"""Tool arguments are strict JSON: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's ``json`` reads by default)
and numbers too large for a float (``1e999``, which it reads as infinity) are refused, naming the argument.

A check such as ``args["amount"] <= 100`` is ``False`` for ``NaN``, so ``not amount <= 100`` lets it through, and
``-Infinity`` passes every lower bound: a non-finite number must never reach a check or a tool. The proxy's tool
checks, ``guard_tool`` and the agent loop all read and check arguments through this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from interlock.monitor.errors import InterlockError

__all__ = ["NotStrictJSON", "argument_path", "load_arguments", "loads_strict", "non_finite_path"]

Path = tuple[str | int, ...]


class NotStrictJSON(InterlockError, ValueError):
    """JSON that holds a value strict JSON has not (``NaN``, ``Infinity``, a number out of a float's range).

    ``path``: where it is, from the top of the document (keys and list indices); ``value``: how it was written.
    """

    def __init__(self, path: Path, value: str) -> None:
        self.path = path
        self.value = value
        super().__init__(f"{argument_path(path) or 'the value'} is {value}, which strict JSON does not allow "
                         f"(no NaN, Infinity or numbers out of range)")

    def argument_message(self, skip: int = 0) -> str:
        """What to tell a model or a client about it, naming the argument (``path`` without its first ``skip``
        parts, e.g. the ``"arguments"`` key around a call's arguments)."""
        where = argument_path(self.path[skip:])
        subject = f"argument {where!r}" if where else "the arguments"
        return f"{subject} is {self.value}, which is not a JSON number (tool arguments are strict JSON: no NaN, " \
               f"Infinity or numbers out of range)"


class _Bad:
    """Stands in the parsed document for a non-finite number, until the walk finds where it is."""

    __slots__ = ("written",)

    def __init__(self, written: str) -> None:
        self.written = written


def _constant(name: str) -> _Bad:
    return _Bad(name)


def _float(text: str) -> float | _Bad:
    value = float(text)
    return value if math.isfinite(value) else _Bad(text)


def argument_path(path: Path) -> str:
    """``("to", "accounts", 2)`` as ``to.accounts[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _find(value: Any, bad: Any) -> tuple[Path, Any] | None:
    """The path of the first item (depth first, in document order) for which ``bad(item)`` holds. Iterative: no
    nesting depth can overflow the stack."""
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if bad(item):
            return path, item
        if isinstance(item, Mapping):
            stack.extend(reversed([((*path, str(k)), v) for k, v in item.items()]))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([((*path, i), v) for i, v in enumerate(item)]))
    return None


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that raises :class:`NotStrictJSON` (naming where) for ``NaN``, ``Infinity``, ``-Infinity`` and
    numbers out of a float's range. Other errors are ``json.loads``'s (``ValueError``, ``RecursionError``)."""
    data = json.loads(text, parse_constant=_constant, parse_float=_float)
    found = _find(data, lambda item: isinstance(item, _Bad))
    if found is not None:
        raise NotStrictJSON(found[0], found[1].written)
    return data


def non_finite_path(value: Any) -> Path | None:
    """Where ``value`` (arguments as Python objects) holds a float that is NaN or infinite; ``None``: nowhere."""
    found = _find(value, lambda item: isinstance(item, float) and not math.isfinite(item))
    return None if found is None else found[0]


def load_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments as a model sends them (a JSON object in a string), strictly: raises
    :class:`NotStrictJSON` for non-finite numbers, ``ValueError`` for anything else that is not one JSON object
    (``RecursionError`` for nesting deeper than the reader goes)."""
    data = loads_strict(text)
    if not isinstance(data, dict):
        raise ValueError(f"the arguments are a {type(data).__name__}, not a JSON object")
    return data
