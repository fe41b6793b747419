"""The verifier registry: built-in and third-party verifiers by name.

Register with the decorator (``@register_verifier("name")`` on a class or a factory) or, from another
distribution, with an entry point in the group ``interlock.verifiers``::

    [project.entry-points."interlock.verifiers"]
    my-check = "my_package.checks:MyCheck"

Entry points are loaded only when a name is looked up or listed, so importing ``monitor`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from interlock.monitor.errors import RegistryError
from interlock.monitor.verifier import Verifier

__all__ = ["ENTRY_POINT_GROUP", "RegisteredVerifier", "applicable_verifiers", "create_verifier", "list_verifiers",
           "register_verifier"]

ENTRY_POINT_GROUP = "interlock.verifiers"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RegisteredVerifier:
    name: str
    target: str  # "module:attr" of the factory
    origin: str  # "registered" or the distribution that declared the entry point
    description: str = ""


_registry: dict[str, tuple[Callable[..., Any] | None, RegisteredVerifier]] = {}


def register_verifier(name: str, *, description: str = "") -> Callable[[F], F]:
    """Register a verifier class or factory under ``name`` (a name can be registered once)."""

    def deco(factory: F) -> F:
        existing = _registry.get(name)
        target = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
        if existing is not None and existing[1].target != target:
            raise RegistryError(f"verifier name {name!r} is already registered by {existing[1].target}")
        doc = description or (factory.__doc__ or "").strip().split("\n")[0]
        _registry[name] = (factory, RegisteredVerifier(name, target, "registered", doc))
        return factory

    return deco


def _entry_points() -> dict[str, RegisteredVerifier]:
    found: dict[str, RegisteredVerifier] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown"
        found.setdefault(ep.name, RegisteredVerifier(ep.name, ep.value, dist))
    return found


def _load(name: str) -> Callable[..., Any]:
    if name in _registry and _registry[name][0] is not None:
        factory = _registry[name][0]
        assert factory is not None
        return factory
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                factory = ep.load()
            except Exception as exc:
                raise RegistryError(f"verifier {name!r}: entry point {ep.value!r} failed to load: "
                                    f"{type(exc).__name__}: {exc}") from exc
            if not callable(factory):
                raise RegistryError(f"verifier {name!r}: entry point {ep.value!r} is not callable")
            return factory  # type: ignore[no-any-return]
    known = ", ".join(sorted(v.name for v in list_verifiers())) or "none"
    raise RegistryError(f"no verifier named {name!r}; known verifiers: {known}")


def create_verifier(name: str, **options: Any) -> Verifier:
    """Make the verifier registered as ``name``; ``options`` go to its factory."""
    factory = _load(name)
    made = factory(**options)
    if not isinstance(made, Verifier):
        raise RegistryError(f"verifier {name!r}: factory returned {type(made).__name__}, not a Verifier")
    return made


def list_verifiers() -> list[RegisteredVerifier]:
    """Every verifier known by name: registered in this process and declared by entry points."""
    found = _entry_points()
    for name, (_factory, info) in _registry.items():
        found.setdefault(name, info)
    out = []
    for name in sorted(found):
        info = found[name]
        if not info.description:
            try:
                factory = _load(name)
                doc = (getattr(factory, "description", "") or factory.__doc__ or "").strip().split("\n")[0]
                info = RegisteredVerifier(info.name, info.target, info.origin, doc)
            except RegistryError as exc:
                info = RegisteredVerifier(info.name, info.target, info.origin, f"(failed to load: {exc})")
        out.append(info)
    return out


def applicable_verifiers(prompt: str) -> list[str]:
    """Names of the known verifiers whose class says it applies to ``prompt`` (:meth:`Verifier.applies_to`), in
    name order; a verifier that fails to load is left out (``interlock verifiers`` shows why)."""
    names = []
    for info in list_verifiers():
        try:
            factory = _load(info.name)
        except RegistryError:
            continue
        if isinstance(factory, type) and issubclass(factory, Verifier) and factory.applies_to(prompt):
            names.append(info.name)
    return names
