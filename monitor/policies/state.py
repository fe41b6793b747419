"""The state of the system a policy checks calls against: a read-only view for rules, a private copy-on-write
layer for the effects of the calls a session allows.

:class:`State` holds a JSON-like document (dicts, lists, strings, numbers), loaded from a JSON or YAML file or given
as a dict. Many sessions share one loaded document: each :meth:`State.fork` is a layer over it that copies only the
records an effect edits (``state.edit("orders", "#W1")`` copies that one order), so checking a thousand
conversations against a 3 MB database copies a few orders, not the database.

Rules see :class:`StateView`: mappings and sequences over the layer that cannot be changed
(``view["orders"]["#W1"]["status"]``). :class:`LiveState` is the other kind of source: a function that fetches
the current state from the system itself (a database query) each time a call is checked; effects are not modelled
there, because the system changes by itself.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from interlock.monitor.policies.errors import StateError

__all__ = ["LiveState", "State", "StateSource", "StateView", "thaw"]

Path_ = tuple[Any, ...]


def _wrap(obj: Any, path: Path_ = ()) -> Any:
    if isinstance(obj, dict):
        return _MappingView(obj, path)
    if isinstance(obj, list):
        return _SequenceView(obj, path)
    return obj


class StateView:
    """A read-only window on the state, for the check it was taken for (an effect's edits show in views taken after
    them). Mappings and sequences in it are views too; leaves are values."""

    __slots__ = ("_obj", "_path")

    def __init__(self, obj: Any, path: Path_ = ()) -> None:
        self._obj = obj
        self._path = path

    @property
    def path(self) -> Path_:
        return self._path

    def thaw(self) -> Any:
        """A private deep copy of what is here, as plain dicts and lists."""
        return copy.deepcopy(self._obj)

    def __eq__(self, other: object) -> bool:
        return bool(self._obj == (other._obj if isinstance(other, StateView) else other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {'/'.join(map(str, self._path)) or '/'}>"


class _MappingView(StateView, Mapping[str, Any]):
    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._obj[key], (*self._path, key))

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return _wrap(self._obj[key], (*self._path, key))
        except (KeyError, TypeError):
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._obj))

    def items(self) -> Any:  # one pass, without a lookup per key
        return [(k, _wrap(v, (*self._path, k))) for k, v in self._obj.items()]

    def values(self) -> Any:
        return [_wrap(v, (*self._path, k)) for k, v in self._obj.items()]

    def __len__(self) -> int:
        return len(self._obj)

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._obj
        except TypeError:  # an unhashable key is in no mapping
            return False


class _SequenceView(StateView, Sequence[Any]):
    __slots__ = ()

    def __getitem__(self, index: Any) -> Any:
        obj = self._obj
        if isinstance(index, slice):
            return [_wrap(obj[i], (*self._path, i)) for i in range(*index.indices(len(obj)))]
        if index < 0:
            index += len(obj)
        return _wrap(obj[index], (*self._path, index))

    def __len__(self) -> int:
        return len(self._obj)


def thaw(value: Any) -> Any:
    """Plain data from a view (a deep copy); other values unchanged."""
    return value.thaw() if isinstance(value, StateView) else value


class State:
    """A JSON-like document with a copy-on-write layer for the effects of allowed calls.

    - ``State(data)`` / ``State.load(path)``: the document (JSON, or YAML by the file's suffix).
    - ``view``: the read-only :class:`StateView` rules get.
    - ``fork()``: a new layer over the same document, for one session; nothing it edits is seen by others.
    - ``edit(*path)``: in an effect, the record at ``path`` as a private, mutable copy kept in this layer (the
      containers above it are copied shallowly, the record deeply: a 1,000-order table costs one dict copy).
    - ``set(*path, value)``: replace or add one entry; missing mappings on the way are created.
    """

    live = False

    def __init__(self, data: Any = None, *, source: str = "") -> None:
        self._root: Any = {} if data is None else data
        self._owned: dict[int, Any] = {}  # id -> container this layer copied (kept alive so ids stay unique)
        self._deep: set[int] = set()  # owned containers whose contents are all owned too
        self._edited: list[Path_] = []
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> State:
        """The state in a JSON (``.json``) or YAML (``.yaml``, ``.yml``) file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read the state file {path}: {exc}") from None
        yaml_file = path.suffix.lower() in (".yaml", ".yml")
        try:
            if yaml_file:
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except RecursionError:
            raise StateError(f"the state file {path} is nested too deeply to read") from None
        except Exception as exc:
            raise StateError(f"the state file {path} is not valid {'YAML' if yaml_file else 'JSON'}: {exc}") from None
        if not isinstance(data, dict | list):
            raise StateError(f"the state file {path} must hold an object or a list, not {type(data).__name__}")
        return cls(data, source=str(path))

    @property
    def view(self) -> Any:
        """The whole state as it is now, read-only (a mapping view for a JSON object); take a new view after an
        edit to see it."""
        return _wrap(self._root)

    def fork(self) -> State:
        """A new layer over the same document: it starts with this one's edits and keeps its own."""
        child = State(self._root, source=self.source)
        child._edited = list(self._edited)
        self._owned, self._deep = {}, set()  # the document is shared now: both layers copy before they write
        return child

    def _read(self, path: Path_) -> Any:
        obj = self._root
        try:
            for key in path:
                obj = obj[key]
        except (KeyError, IndexError, TypeError):
            raise KeyError(path[-1] if path else path) from None
        return obj

    def get(self, *path: Any, default: Any = None) -> Any:
        """The (read-only) value at ``path``, or ``default`` when the path leads nowhere."""
        try:
            return _wrap(self._read(path), path)
        except KeyError:
            return default

    def _own(self, obj: Any, deep: bool) -> Any:
        """``obj`` as this layer's own copy (made once); with ``deep``, everything inside it too."""
        if id(obj) not in self._owned:
            obj = copy.copy(obj)
            self._owned[id(obj)] = obj
        if deep and id(obj) not in self._deep:
            for key, value in list(obj.items() if isinstance(obj, dict) else enumerate(obj)):
                if isinstance(value, dict | list):
                    obj[key] = self._own(value, True)
            self._deep.add(id(obj))
        return obj

    def edit(self, *path: Any) -> Any:
        """The mapping or list at ``path`` as a mutable copy private to this layer; later reads see its changes."""
        where = "/".join(map(str, path)) or "/"
        try:
            target = self._read(path)
        except KeyError:
            raise StateError(f"the state has nothing at {where}") from None
        if not isinstance(target, dict | list):
            raise StateError(f"only a mapping or a list can be edited; {where} is a {type(target).__name__} (use "
                             f"State.set to replace it)")
        self._edited.append(path)
        return self._private(path, deep=True)

    def _private(self, path: Path_, *, deep: bool) -> Any:
        """Copy the containers from the root down to ``path`` into this layer (shallowly; the last one deeply
        when ``deep``) and return the last one."""
        self._root = self._own(self._root, deep=deep and not path)
        parent = self._root
        for depth, key in enumerate(path):
            child = self._own(parent[key], deep=deep and depth == len(path) - 1)
            parent[key] = child
            parent = child
        return parent

    def set(self, *path_and_value: Any) -> None:
        """``set("orders", "#W1", "status", "cancelled")``: the last argument is the value."""
        if len(path_and_value) < 2:
            raise StateError("State.set needs a path and a value")
        *path, value = path_and_value
        parents = tuple(path[:-1])
        where = "/".join(map(str, path))
        for i in range(len(parents)):  # create missing mappings on the way
            if self.get(*parents[: i + 1], default=_ABSENT) is _ABSENT:
                holder = self._private(parents[:i], deep=False)
                if not isinstance(holder, dict):
                    raise StateError(f"cannot set {where}: {'/'.join(map(str, parents[:i])) or '/'} is not a mapping")
                holder[parents[i]] = {}
        try:
            parent = self._private(parents, deep=False)
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError) as exc:
            raise StateError(f"cannot set {where}: {type(exc).__name__}: {exc}") from None
        self._edited.append(tuple(path))

    @property
    def edited(self) -> tuple[Path_, ...]:
        """The paths the effects so far have edited, in order."""
        return tuple(self._edited)


_ABSENT: Any = object()


class LiveState:
    """State fetched from the system itself: ``fetch()`` is called once per checked call and returns a mapping
    (a database query, an HTTP call). Effects are not modelled: the system changes when the tools run."""

    live = True

    def __init__(self, fetch: Callable[[], Any], *, source: str = "live") -> None:
        if not callable(fetch):
            raise StateError(f"LiveState needs a function that returns the state, got {fetch!r}")
        self.fetch = fetch
        self.source = source

    def fork(self) -> LiveState:
        return self

    def snapshot(self) -> State:
        """The state as it is now, as a read-only document."""
        data = self.fetch()
        if not isinstance(data, dict | list):
            raise StateError(f"the live state's fetch() returned {type(data).__name__}, not a mapping or a list")
        return State(data, source=self.source)


StateSource = State | LiveState
