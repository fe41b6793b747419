"""The SQLite agent on the embedded default model (SmolLM2-135M-Instruct): whatever the model writes, the
database only ever holds transfers whose reasoning and arguments passed their checks."""

from __future__ import annotations

from typing import Any

import pytest
from interlock import Agent, StopReason, TokenBudget
from interlock.monitor.agents.tools import ToolCall

import tests.test_agent as agent_tests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm() -> Any:
    try:
        from interlock.generators import Transformers

        return Transformers.default(prompt_format="raw", temperature=0.0)
    except Exception as exc:  # the package that ships the model file is an optional install
        pytest.skip(f"the embedded default model is not available: {exc}")


async def test_real_model_agent_writes_only_checked_transfers(smollm: Any) -> None:
    ex = agent_tests.ex
    bank = ex.Bank()

    def chat_template(messages: Any) -> str:
        return str(smollm.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))

    agent = Agent(smollm, ex.make_tools(bank), verifiers=[ex.sums], governors=[TokenBudget(max_total=80)],
                  prompt_format=chat_template, max_turns=2,
                  system="You are a careful bank assistant. Think step by step and show your sums.")
    result = await agent.run(ex.TASK)
    assert 1 <= len(result.turns) <= 2
    ran = []
    for turn in result.turns:
        assert turn.result.stop_reason is not StopReason.ERROR, turn.result.detail
        for outcome in turn.outcomes:
            call = outcome.call
            if isinstance(call, ToolCall) and call.name == "transfer" and outcome.ran:
                assert not turn.result.open_violations  # the barrier let it through: no standing violation
                ran.append((call.arguments["source"], call.arguments["target"], call.arguments["amount"]))
    assert bank.transfers() == ran  # refused calls never reached the database
    balances = [bank.get_balance(a) for a in bank.list_accounts()]
    assert sum(balances) == sum(ex.OPENING.values()) and min(balances) >= 0
