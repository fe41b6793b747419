"""OpenAI-compatible HTTP servers as generators: ``OpenAICompatible`` (completions and chat completions).

``sse`` parses server-sent events from arbitrary network reads, ``payloads`` builds what is sent,
``deltas`` reads what comes back, ``generator`` streams, retries and closes.
"""

from __future__ import annotations

from interlock.generators.openai_compat.generator import RETRY_STATUSES, OpenAICompatible
from interlock.generators.openai_compat.payloads import CONTINUE_FIELDS, DEFAULT_CONTINUE_INSTRUCTION
from interlock.generators.openai_compat.sse import ServerSentEvent, SSEDecoder, aiter_events

__all__ = [
    "CONTINUE_FIELDS",
    "DEFAULT_CONTINUE_INSTRUCTION",
    "RETRY_STATUSES",
    "OpenAICompatible",
    "SSEDecoder",
    "ServerSentEvent",
    "aiter_events",
]
