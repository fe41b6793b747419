"""``ThinkingBudget``: a cap on the thinking alone, ended gracefully so that the model still answers.

A reasoning model can spend its whole budget thinking and never answer. This governor caps the thinking's tokens
and, when they are spent, ends the thinking the way llama.cpp's ``--reasoning-budget-message`` and s1's budget
forcing do: it appends the budget message ("Considering the limited time, I have to give the solution now.") and
the end of the thinking (the closing tag where the backend keeps tags in its text), and the model writes its
answer, which the cap does not count. A minimum (``min_tokens``) works the other way: a thinking that ends early
is reopened with "Wait" (s1's budget forcing), at most ``max_extensions`` times.

With ``server=True`` the cap is asked of the server (``GenerationRequest.max_thinking_tokens``, which
:class:`~interlock.generators.OpenAICompatible` sends in vLLM's, SGLang's or llama.cpp's field, see its
``thinking_budget``), so the server ends the thinking itself within one request; the governor checks that it
did, and when a thinking runs past the cap (``slack`` tokens allowed for the server's own message and tag) ends it
here and enforces the cap itself for the rest of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities
from interlock.monitor.governor import Governor, GovernorDecision, RunContext
from interlock.monitor.phases import ANSWER, THINKING

__all__ = ["DEFAULT_BUDGET_MESSAGE", "ThinkingBudget"]

DEFAULT_BUDGET_MESSAGE = "\n\nConsidering the limited time, I have to give the solution now.\n"


@dataclass
class _RunState:
    last_phase: str = ANSWER
    extensions: int = 0
    local: bool = False  # the server did not honour the budget: enforced here from now on


class ThinkingBudget(Governor):
    """Caps a reasoning model's thinking at ``max_tokens`` (kept thinking tokens) and ends it with ``message``;
    ``min_tokens`` reopens a thinking that ended before it with ``wait``; ``server`` asks the server to enforce
    the cap (and checks that it did). See the module docstring."""

    name = "thinking_budget"

    def __init__(self, max_tokens: int | None = None, *, message: str = DEFAULT_BUDGET_MESSAGE,
                 min_tokens: int | None = None, wait: str = "Wait", max_extensions: int = 2, server: bool = False,
                 slack: int = 32) -> None:
        if max_tokens is None and min_tokens is None:
            raise ConfigError("ThinkingBudget needs max_tokens or min_tokens")
        for label, value in (("max_tokens", max_tokens), ("min_tokens", min_tokens)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"ThinkingBudget: {label} must be an integer >= 0, got {value!r}")
        if max_tokens is not None and min_tokens is not None and min_tokens > max_tokens:
            raise ConfigError(f"ThinkingBudget: min_tokens={min_tokens} is above max_tokens={max_tokens}")
        if not isinstance(message, str) or not isinstance(wait, str):
            raise ConfigError("ThinkingBudget: message and wait must be strings")
        if min_tokens is not None and not wait.strip():
            raise ConfigError("ThinkingBudget: min_tokens needs a non-empty wait text to reopen the thinking with")
        if not isinstance(max_extensions, int) or max_extensions < 0:
            raise ConfigError(f"ThinkingBudget: max_extensions must be an integer >= 0, got {max_extensions!r}")
        if server and max_tokens is None:
            raise ConfigError("ThinkingBudget: server=True needs max_tokens (the budget to ask the server for)")
        if not isinstance(slack, int) or slack < 0:
            raise ConfigError(f"ThinkingBudget: slack must be an integer >= 0, got {slack!r}")
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.message = message
        self.wait = wait
        self.max_extensions = max_extensions
        self.server = server
        self.slack = slack
        self._runs: dict[str, _RunState] = {}

    def validate(self, capabilities: Capabilities) -> None:
        if self.server and not capabilities.thinking_budget:
            raise ConfigError("ThinkingBudget(server=True): the backend does not pass thinking budgets to its server "
                              "(OpenAICompatible(thinking_budget='vllm' | 'sglang' | 'llama.cpp'))")

    def start(self, ctx: RunContext) -> None:
        self._runs[ctx.run_id] = _RunState()

    def on_end(self, ctx: RunContext) -> None:
        self._runs.pop(ctx.run_id, None)

    def _state(self, ctx: RunContext) -> _RunState:
        return self._runs.setdefault(ctx.run_id, _RunState())

    def _left(self, ctx: RunContext) -> int | None:
        """Thinking tokens left while the model thinks, or before it has written anything (it may begin with a
        thinking); ``None`` once it answers."""
        if self.max_tokens is None or (ctx.phase != THINKING and ctx.text):
            return None
        return max(0, self.max_tokens - ctx.tokens.thinking)

    def token_allowance(self, ctx: RunContext) -> int | None:
        if self.server and not self._state(ctx).local:
            return None  # the server ends the thinking itself; on_chunk checks that it does
        return self._left(ctx)

    def thinking_allowance(self, ctx: RunContext) -> int | None:
        return self._left(ctx) if self.server and not self._state(ctx).local else None

    def on_exhausted(self, ctx: RunContext) -> GovernorDecision | None:
        if ctx.phase != THINKING:
            return None
        return GovernorDecision.end_thinking(f"the thinking budget of {self.max_tokens} tokens is spent: answering "
                                             "now", self.message)

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        st = self._state(ctx)
        if not chunk.text:
            return None
        ended = st.last_phase == THINKING and chunk.phase == ANSWER
        st.last_phase = chunk.phase
        if (self.server and not st.local and self.max_tokens is not None and ctx.phase == THINKING
                and ctx.tokens.thinking > self.max_tokens + self.slack):
            st.local = True
            return GovernorDecision.end_thinking(
                f"the server did not honour the thinking budget of {self.max_tokens} tokens ({ctx.tokens.thinking} "
                "thinking tokens): ended here, and enforced here from now on", self.message)
        if (ended and self.min_tokens is not None and ctx.tokens.thinking < self.min_tokens
                and st.extensions < self.max_extensions):
            st.extensions += 1
            st.last_phase = THINKING
            return GovernorDecision.extend_thinking(
                f"the thinking ended after {ctx.tokens.thinking} tokens, before the minimum of {self.min_tokens}: "
                f"reopened with {self.wait!r}", self.wait)
        return None
