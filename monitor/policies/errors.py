"""Errors of :mod:`interlock.monitor.policies`; every one derives from :class:`PolicyError`.

::

    InterlockError                       (interlock.monitor.errors)
    └── PolicyError                      base of everything the policies package raises
        ├── PolicyDefinitionError        a policy declares something it cannot use (also a ConfigError)
        ├── PolicyLoadError              a policy file cannot be imported, or holds no Policy
        ├── StateError                   a state file cannot be read, or a path into the state does not exist
        ├── ConversationError            a conversation file is not JSON Lines of messages and tool calls;
        │                                names the file, the line and what was wrong (also a ValueError)
        └── DraftError                   ``interlock policy draft``: the model's answer held no usable policy

A refused tool call is not an error: it is a :class:`~interlock.monitor.policies.Decision` with
``allowed=False``. :class:`~interlock.monitor.agents.ToolRefused` is raised only by tools guarded with
``on_refusal="raise"``.
"""

from __future__ import annotations

from interlock.monitor.errors import ConfigError, InterlockError

__all__ = ["ConversationError", "DraftError", "PolicyDefinitionError", "PolicyError", "PolicyLoadError",
           "StateError"]


class PolicyError(InterlockError):
    """Base of every error the policies package raises."""


class PolicyDefinitionError(PolicyError, ConfigError):
    """A policy declared a rule, tool or effect it cannot use (a duplicate name, an unknown tool, a bad type)."""


class PolicyLoadError(PolicyError):
    """A policy file could not be imported, or it holds no :class:`~interlock.monitor.policies.Policy`."""


class StateError(PolicyError):
    """A state file could not be read, or a path into the state does not lead anywhere."""


class ConversationError(PolicyError, ValueError):
    """A conversation could not be read; the message names the file, the line and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class DraftError(PolicyError):
    """The drafting model's answer held no policy that imports and runs; nothing was written."""
