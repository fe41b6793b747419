"""Generator backends: anything that streams chunks of one trace from a prompt plus a prefix.

``Scripted`` and ``FromIterator`` need no model. Heavy backends are imported lazily on first use.
"""

from __future__ import annotations

from generators.errors import BackendError, ScriptError
from generators.iterator import FromIterator
from generators.scripted import Scripted

__all__ = ["BackendError", "FromIterator", "ScriptError", "Scripted"]
