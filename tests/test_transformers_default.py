"""The embedded default model (SmolLM2-135M-Instruct) end to end: a monitored arithmetic answer is corrected."""

from __future__ import annotations

import re
from typing import Any

import pytest

from monitor import Fail, Monitor, Step, StopReason, TokenBudget, list_verifiers, verifier

pytestmark = pytest.mark.slow

CLAIM = re.compile(r"(\d+)\s*([*x×+-])\s*(\d+)\s*=\s*(\d+)")


@verifier(name="products")
def products(step: Step) -> Fail | None:
    """Integer claims "a op b = c" (op one of + - * x ×), checked exactly; a test's own small verifier."""
    for m in CLAIM.finditer(step.text):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        value = a + b if op == "+" else a - b if op == "-" else a * b
        if value != c:
            return Fail(f"{a} {op} {b} is {value}, not {c}", span=step.to_trace(*m.span()),
                        feedback=f"{a} {op} {b} is {value}", claim=f"{a} {op} {b} = {c}")
    return None


@pytest.fixture(scope="module")
def smollm() -> Any:
    from generators.transformers import ModelNotFoundError, Transformers

    try:
        return Transformers.default(max_new_tokens=120)
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))


async def test_monitored_arithmetic_on_the_embedded_model(smollm: Any) -> None:
    names = {info.name for info in list_verifiers()}
    verifiers: list[Any] = [products, "arithmetic"] if "arithmetic" in names else [products]
    result = await Monitor(smollm, verifiers=verifiers, governors=[TokenBudget(max_total=200)]).run(
        "What is 12*7?")
    # greedy SmolLM2-135M answers "12*7 = 89"; the monitor rolls that step back and the model redoes it
    applied = [i for i in result.interventions if i.applied]
    assert applied, result.text
    assert "12*7 = 89" in applied[0].removed_text
    assert "84" in applied[0].feedback
    assert result.text.startswith(applied[0].feedback)
    assert "= 89" not in result.text
    assert "84" in result.text
    assert result.stop_reason is StopReason.COMPLETE
    assert result.tokens.discarded > 0 and result.tokens.total <= 200
    assert smollm.capabilities.kv_rollback
