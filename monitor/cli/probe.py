"""``--probe [SPEC]`` for ``interlock run`` and ``interlock proxy``: answer probes at the thinking's turns
(:class:`~interlock.monitor.governors.AnswerProbe`), in the spec syntax of the budget policies (``k=2:at=wait``,
``deer``, ``eat:eat=0.02``).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_probe", "probe_generator_options", "probe_governor"]


def add_probe(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--probe", nargs="?", const="probe", default=None, metavar="SPEC",
                        help="probe the model's answer at the turns of its thinking ('Wait', new paragraphs, every N "
                             "tokens) by forking it, and end the thinking once the probes agree (default: 3 in a "
                             "row) or are confident: SPEC is probe[:k=3][:at=wait/paragraph][:every=N]"
                             "[:conf=0.95][:eat=0.01][:then=answer|probe], or deer / eat (see the README)")


def probe_governor(args: argparse.Namespace) -> Any:
    """The :class:`AnswerProbe` that ``--probe SPEC`` asks for, or ``None``."""
    spec = getattr(args, "probe", None)
    if spec is None:
        return None
    from interlock.monitor.governors.answer_probe import PROBE_KINDS, probe_from_spec

    kind, _, rest = spec.partition(":")
    if kind not in PROBE_KINDS:  # options without a kind: probe's defaults
        kind, rest = "probe", spec
    return probe_from_spec(rest, kind)


def probe_generator_options(args: argparse.Namespace) -> dict[str, Any]:
    """What an HTTP generator must ask for so that the probe can read token probabilities (DEER, EAT)."""
    probe = probe_governor(args)
    if probe is None or "" in probe.rules.needs:
        return {}
    return {"logprobs": True, "top_logprobs": 5}
