"""interlock's runtime: the trace, verdicts, verifier API, scheduling, arbitration, rollback, governors, events.

Quick start::

    from monitor import Monitor, verifier, Fail
    from generators import Scripted

    @verifier
    def no_negative(step):
        return Fail("negative amount") if "-$" in step.text else None

    result = await Monitor(Scripted("..."), verifiers=[no_negative]).run("prompt")
"""

from __future__ import annotations

from monitor.agent import Agent, AgentResult, AgentTurn, StopAt, ToolOutcome
from monitor.arbiter import Arbiter, Candidate
from monitor.budget_pool import BudgetPool, PoolShare, estimate_difficulty
from monitor.chunks import Chunk
from monitor.early_stop import AnswerConvergence, EntropyStop
from monitor.errors import (
    ConfigError,
    GeneratorError,
    InterlockError,
    RegistryError,
    TraceFileError,
    ViolationError,
)
from monitor.events import (
    ChunkAppended,
    Event,
    FeedbackInjected,
    GovernorDecided,
    Intervened,
    RunFinished,
    RunStarted,
    VerdictReceived,
    VerifierError,
)
from monitor.generation import Capabilities, GenerationRequest, Generator
from monitor.governors import (
    ForceAnswer,
    Governor,
    GovernorDecision,
    InterventionLimit,
    OscillationGuard,
    RunContext,
    TokenBudget,
)
from monitor.loop_guard import LoopGuard
from monitor.monitor import DEFAULT_FEEDBACK_TEMPLATE, Monitor, Run
from monitor.registry import applicable_verifiers, create_verifier, list_verifiers, register_verifier
from monitor.result import Intervention, RunResult, StopReason, TokenCounts
from monitor.tools import GuardedTool, RefusalReason, ToolCall, ToolRefusal, ToolRefused, guard_tool, use_run
from monitor.trace import Forker, Step, Trace, TraceView
from monitor.tracefile import RecordedTrace, TraceWriter, read_trace
from monitor.triggers import AnyOf, AtEnd, EveryNTokens, OnPattern, StepBoundary, Trigger
from monitor.verdicts import Action, Fail, Pass, Span, Unknown, Verdict
from monitor.verifier import FunctionVerifier, RunsIn, Verifier, verifier

__all__ = [
    "DEFAULT_FEEDBACK_TEMPLATE",
    "Action",
    "Agent",
    "AgentResult",
    "AgentTurn",
    "AnswerConvergence",
    "AnyOf",
    "Arbiter",
    "AtEnd",
    "BudgetPool",
    "Candidate",
    "Capabilities",
    "Chunk",
    "ChunkAppended",
    "ConfigError",
    "EntropyStop",
    "Event",
    "EveryNTokens",
    "Fail",
    "FeedbackInjected",
    "ForceAnswer",
    "Forker",
    "FunctionVerifier",
    "GenerationRequest",
    "Generator",
    "GeneratorError",
    "Governor",
    "GovernorDecided",
    "GovernorDecision",
    "GuardedTool",
    "InterlockError",
    "Intervened",
    "Intervention",
    "InterventionLimit",
    "LoopGuard",
    "Monitor",
    "OnPattern",
    "OscillationGuard",
    "Pass",
    "PoolShare",
    "RecordedTrace",
    "RefusalReason",
    "RegistryError",
    "Run",
    "RunContext",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "RunsIn",
    "Span",
    "Step",
    "StepBoundary",
    "StopAt",
    "StopReason",
    "TokenBudget",
    "TokenCounts",
    "ToolCall",
    "ToolOutcome",
    "ToolRefusal",
    "ToolRefused",
    "Trace",
    "TraceFileError",
    "TraceView",
    "TraceWriter",
    "Trigger",
    "Unknown",
    "Verdict",
    "VerdictReceived",
    "Verifier",
    "VerifierError",
    "ViolationError",
    "applicable_verifiers",
    "create_verifier",
    "estimate_difficulty",
    "guard_tool",
    "list_verifiers",
    "read_trace",
    "register_verifier",
    "use_run",
    "verifier",
]
