"""Errors of the ``interlock.generators`` package; all derive from :class:`BackendError`.

::

    interlock.monitor.errors.GeneratorError    (an InterlockError: the monitor ends the run with it)
    └── BackendError                           base of every error a generator backend raises
        ├── ScriptError                        a scripted generator has no continuation for a prefix
        ├── replay.ReplayMismatchError         a replay asked to resume from text the recording never had
        ├── transformers.errors.ModelNotFoundError, ModelLoadError, MissingDependencyError, ContextOverflowError
        └── HTTPBackendError                   OpenAICompatible's errors
            ├── ServerError                    the server answered with an error (status, its message)
            ├── ServerUnavailable              no answer before the first token, after every retry
            ├── MalformedStream                the answer is not the event stream it should be
            ├── StreamInterrupted              the stream broke after text had arrived (not retried)
            └── ThinkingNotContinuable         a rollback or fork inside the thinking, and no way to ask for it
"""

from __future__ import annotations

from interlock.monitor.errors import GeneratorError

__all__ = [
    "BackendError",
    "HTTPBackendError",
    "MalformedStream",
    "ScriptError",
    "ServerError",
    "ServerUnavailable",
    "StreamInterrupted",
    "ThinkingNotContinuable",
]


class BackendError(GeneratorError):
    """Base of every error a generator backend raises."""


class ScriptError(BackendError):
    """A scripted generator has no continuation for the prefix it was asked to resume from."""


class HTTPBackendError(BackendError):
    """Base of the errors of an HTTP backend (``generators.OpenAICompatible``)."""


class ServerError(HTTPBackendError):
    """The server answered with an error: ``status`` (``None`` for an error event inside the stream) and the
    server's own ``message``."""

    def __init__(self, message: str, *, status: int | None = None, server_message: str = "",
                 url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message
        self.url = url


class ServerUnavailable(HTTPBackendError):
    """No answer before the first token (connection refused or reset, timeout, 5xx) after every retry."""

    def __init__(self, message: str, *, attempts: int = 1, url: str = "") -> None:
        super().__init__(message)
        self.attempts = attempts
        self.url = url


class MalformedStream(HTTPBackendError):
    """The server's answer is not the event stream it should be (bad UTF-8, an event that is not JSON, a JSON
    object with no ``choices``)."""


class StreamInterrupted(HTTPBackendError):
    """The stream broke after text had been delivered (disconnect, stall); it is not retried, since the
    monitor would see that text twice. ``received`` is how many characters had arrived."""

    def __init__(self, message: str, *, received: int = 0) -> None:
        super().__init__(message)
        self.received = received


class ThinkingNotContinuable(HTTPBackendError):
    """A request must continue *inside* the thinking (a rollback or a fork into it), and neither way of asking a
    server for that is available: no chat template to render the prompt here for the completions endpoint, and a
    server that does not continue a final assistant message. The message names what to configure; the thinking
    is never silently restarted instead."""
