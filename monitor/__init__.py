"""interlock's core runtime: the trace, verdicts, verifier API, scheduling, arbitration, rollback, events, and
the governor protocol. Applications of it live in subpackages that import the core, never the reverse:
``governors`` (budgets, early stops, the loop guard), ``agents`` (guarded tools, the agent loop), ``replay``
(importers, the batch engine, reports), ``proxy`` and ``cli``. ``import interlock`` is the front door to all.

Quick start::

    from interlock import Monitor, verifier, Fail
    from interlock.generators import Scripted

    @verifier
    def no_negative(step):
        return Fail("negative amount") if "-$" in step.text else None

    result = await Monitor(Scripted("..."), verifiers=[no_negative]).run("prompt")
"""

from __future__ import annotations

from interlock.monitor.arbiter import Arbiter, Candidate
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import (
    ConfigError,
    GeneratorError,
    InterlockError,
    RegistryError,
    TraceFileError,
)
from interlock.monitor.events import (
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
from interlock.monitor.generation import Capabilities, GenerationRequest, Generator
from interlock.monitor.governor import (
    ForceAnswer,
    Governor,
    GovernorDecision,
    InterventionLimit,
    OscillationGuard,
    RunContext,
)
from interlock.monitor.monitor import DEFAULT_FEEDBACK_TEMPLATE, DEFAULT_RESTART_TEMPLATE, Fork, Monitor, Run
from interlock.monitor.phases import ANSWER, THINKING, Phase, PhaseFilter, ThinkingTags
from interlock.monitor.registry import applicable_verifiers, create_verifier, list_verifiers, register_verifier
from interlock.monitor.result import Intervention, Outcome, Restart, RunResult, StopReason, TokenCounts
from interlock.monitor.thinking import TagSplitter, split_text
from interlock.monitor.trace import Forker, Step, Trace, TraceView
from interlock.monitor.tracefile import RecordedTrace, TraceWriter, read_trace
from interlock.monitor.triggers import AnyOf, AtEnd, EveryNTokens, OnPattern, StepBoundary, Trigger
from interlock.monitor.verdicts import Action, Fail, Pass, Span, Unknown, Verdict, ViolationError
from interlock.monitor.verifier import FunctionVerifier, RunsIn, Verifier, verifier

__all__ = [
    "ANSWER",
    "DEFAULT_FEEDBACK_TEMPLATE",
    "DEFAULT_RESTART_TEMPLATE",
    "THINKING",
    "Action",
    "AnyOf",
    "Arbiter",
    "AtEnd",
    "Candidate",
    "Capabilities",
    "Chunk",
    "ChunkAppended",
    "ConfigError",
    "Event",
    "EveryNTokens",
    "Fail",
    "FeedbackInjected",
    "ForceAnswer",
    "Fork",
    "Forker",
    "FunctionVerifier",
    "GenerationRequest",
    "Generator",
    "GeneratorError",
    "Governor",
    "GovernorDecided",
    "GovernorDecision",
    "InterlockError",
    "Intervened",
    "Intervention",
    "InterventionLimit",
    "Monitor",
    "OnPattern",
    "OscillationGuard",
    "Outcome",
    "Pass",
    "Phase",
    "PhaseFilter",
    "RecordedTrace",
    "RegistryError",
    "Restart",
    "Run",
    "RunContext",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "RunsIn",
    "Span",
    "Step",
    "StepBoundary",
    "StopReason",
    "TagSplitter",
    "ThinkingTags",
    "TokenCounts",
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
    "list_verifiers",
    "read_trace",
    "register_verifier",
    "split_text",
    "verifier",
]
