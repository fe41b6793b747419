"""The file form of a constraint problem (JSON or YAML), with errors that name the file and the entry.

::

    variables:
      x: {type: int, min: 0, max: 10}
      y: {type: real, min: 0}
      colour of house 2: {values: [red, green, blue]}
    positions:                      # zebra-style: every value is a variable holding its house
      unit: house
      groups:
        nationality: [Norwegian, Dane, Brit]
        colour: [red, green, blue]
    aliases: {the Brit: Brit}
    constraints:
      - {name: clue 1, text: "The Norwegian lives in the first house.", equal: [Norwegian, 1]}
      - {name: clue 2, left_of: [green, blue], directly: true}
      - {name: budget, sum: [x, y], "<=": 10}
      - {name: clue 4, expr: "abs(Dane - red) = 2"}

Relations: ``equal``, ``different``, ``next_to``, ``left_of``/``right_of`` (``directly: true``),
``distance`` ([a, b, d]), ``sum`` (with one comparison key), ``compare`` ([a, op, b]), ``all_different``,
``expr`` (the expression language) and ``smt2`` (raw SMT-LIB2 assertions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interlock.verifiers.constraints.spec import ConstraintSpec
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["load_spec", "spec_from_dict"]

_PAIR = ("equal", "different", "next_to", "left_of", "right_of")
_RELATIONS = (*_PAIR, "distance", "sum", "compare", "all_different", "expr", "smt2")
_SUM_OPS = ("==", "=", "!=", "<", "<=", ">", ">=")


def load_spec(path: str | os.PathLike[str]) -> ConstraintSpec:
    """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise VerifierConfigError(f"cannot read constraint file {p}: {exc.strerror or exc}") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise VerifierConfigError(f"{p}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    elif p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise VerifierConfigError(f"{p}: {where}invalid YAML: {getattr(exc, 'problem', exc)}") from None
    else:
        raise VerifierConfigError(f"{p}: unknown constraint file type {p.suffix!r}; use .json, .yaml or .yml")
    return spec_from_dict(data, source=str(p))


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise VerifierConfigError(f"{where}: {message}")


def spec_from_dict(data: Any, *, source: str = "spec") -> ConstraintSpec:
    """Build a :class:`ConstraintSpec` from the plain-data form; errors say ``source: where: what``."""
    _need(isinstance(data, Mapping), source, "the top level must be a mapping")
    unknown = set(data) - {"variables", "positions", "aliases", "constraints"}
    _need(not unknown, source, f"unknown section(s) {sorted(unknown)}; expected variables, positions, aliases, "
          "constraints")
    spec = ConstraintSpec()
    try:
        _variables(spec, data.get("variables") or {}, source)
        if data.get("positions") is not None:
            _positions(spec, data["positions"], f"{source}: positions")
        aliases = data.get("aliases") or {}
        _need(isinstance(aliases, Mapping), f"{source}: aliases", "must map an alias to a variable name")
        for alias, name in aliases.items():
            spec.alias(str(alias), str(name))
        constraints = data.get("constraints") or []
        _need(isinstance(constraints, list), f"{source}: constraints", "must be a list")
        for i, item in enumerate(constraints):
            _constraint(spec, item, f"{source}: constraints[{i}]")
    except VerifierConfigError as exc:
        text = str(exc)
        raise VerifierConfigError(text if text.startswith(source) else f"{source}: {text}") from None
    return spec


def _variables(spec: ConstraintSpec, variables: Any, source: str) -> None:
    _need(isinstance(variables, Mapping), f"{source}: variables", "must map names to declarations")
    for name, decl in variables.items():
        where = f"{source}: variables.{name}"
        if isinstance(decl, str):
            decl = {"type": decl}
        _need(isinstance(decl, Mapping), where, "must be a mapping such as {type: int, min: 0, max: 9}")
        if "values" in decl:
            _need(isinstance(decl["values"], list), where, "values must be a list")
            spec.enum(str(name), [str(v) for v in decl["values"]])
            continue
        kind = decl.get("type")
        if kind == "int":
            spec.integer(str(name), decl.get("min"), decl.get("max"))
        elif kind == "real":
            spec.real(str(name), decl.get("min"), decl.get("max"))
        elif kind == "bool":
            spec.boolean(str(name))
        else:
            raise VerifierConfigError(f"{where}: type must be int, real or bool (or give values), got {kind!r}")


def _positions(spec: ConstraintSpec, block: Any, where: str) -> None:
    _need(isinstance(block, Mapping) and isinstance(block.get("groups"), Mapping), where,
          "needs groups: {group name: [values]}")
    groups = {str(k): [str(v) for v in vs] for k, vs in block["groups"].items()}
    spec.positions(groups, count=block.get("count"), first=int(block.get("first", 1)),
                   unit=str(block.get("unit", "house")))


def _constraint(spec: ConstraintSpec, item: Any, where: str) -> None:
    _need(isinstance(item, Mapping), where, "must be a mapping with a relation key")
    name = item.get("name")
    text = str(item.get("text", ""))
    if name is not None:
        name = str(name)
        where = f"{where} ({name!r})"
    found = [k for k in _RELATIONS if k in item]
    _need(len(found) == 1, where, f"needs exactly one relation key out of {', '.join(_RELATIONS)}; got {found}")
    rel = found[0]
    arg = item[rel]
    try:
        if rel in _PAIR:
            _need(isinstance(arg, list) and len(arg) == 2, where, f"{rel} needs a list of two operands")
            if rel in ("left_of", "right_of"):
                getattr(spec, rel)(arg[0], arg[1], directly=bool(item.get("directly", False)), name=name, text=text)
            else:
                getattr(spec, rel)(arg[0], arg[1], name=name, text=text)
        elif rel == "distance":
            _need(isinstance(arg, list) and len(arg) == 3, where, "distance needs [a, b, d]")
            spec.distance(arg[0], arg[1], int(arg[2]), name=name, text=text)
        elif rel == "compare":
            _need(isinstance(arg, list) and len(arg) == 3, where, "compare needs [a, op, b]")
            spec.compare(arg[0], str(arg[1]), arg[2], name=name, text=text)
        elif rel == "sum":
            ops = [k for k in _SUM_OPS if k in item]
            _need(isinstance(arg, list) and len(ops) == 1, where,
                  f"sum needs a list of terms and one comparison key out of {', '.join(_SUM_OPS)}")
            spec.sum(arg, ops[0], item[ops[0]], name=name, text=text)
        elif rel == "all_different":
            _need(isinstance(arg, list), where, "all_different needs a list")
            spec.all_different(arg, name=name, text=text)
        elif rel == "expr":
            spec.expr(str(arg), name=name, text=text)
        else:
            spec.smt2(str(arg), name=name, text=text)
    except VerifierConfigError as exc:
        raise VerifierConfigError(f"{where}: {exc}") from None
