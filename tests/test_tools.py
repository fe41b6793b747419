"""guard_tool: barrier before the call, argument checks, structured refusals, read-only tools, timeouts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from interlock import ConfigError, Fail, Monitor, Pass, Step, Unknown, Verifier, verifier
from interlock.generators import Scripted
from interlock.monitor.agents.tools import GuardedTool, ToolRefusal, ToolRefused, guard_tool, render_arguments, use_run

from tests.support import check_sums

SUMS_INTERRUPT = verifier(check_sums, name="sums", action="interrupt")


class Ledger:
    """A tool with a side effect we can observe."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, int]] = []

    def transfer(self, to: str, amount: int) -> str:
        """Move money to an account."""
        self.writes.append((to, amount))
        return f"sent {amount} to {to}"


def at_most(limit: int) -> Any:
    def amount_limit(args: Mapping[str, Any]) -> Fail | None:
        if args["amount"] > limit:
            return Fail(f"amount {args['amount']} exceeds the limit of {limit}",
                        feedback=f"Transfers are limited to {limit}.")
        return None
    return amount_limit


class AmountLine(Verifier):
    """A verifier over the rendered arguments: flags an `amount = N` line with N < 0, with the line's span."""

    name = "positive-amount"

    def check(self, state: Step) -> Fail | None:
        m = re.search(r"amount = (-\d+)", state.text)
        if m:
            return Fail("amounts must be positive", span=state.to_trace(*m.span()), feedback="Use a positive amount.")
        return None


async def finished_run(text: str, verifiers: list[Any]) -> Any:
    monitor = Monitor(Scripted(text), verifiers=verifiers)
    async with monitor.stream("p") as run:
        async for _ in run:
            pass
    return run


async def test_clean_reasoning_lets_the_tool_run() -> None:
    ledger = Ledger()
    run = await finished_run("So 12 + 7 = 19.\nI will pay 19.\n", [SUMS_INTERRUPT])
    transfer = guard_tool(ledger.transfer, run=run)
    assert await transfer("bob", 19) == "sent 19 to bob"
    assert ledger.writes == [("bob", 19)]
    assert (transfer.calls, transfer.refusals) == (1, 0)
    assert transfer.__name__ == "transfer" and transfer.description == "Move money to an account."


async def test_violation_in_the_reasoning_refuses_the_call() -> None:
    ledger = Ledger()
    run = await finished_run("So 12 + 7 = 18.\nI will pay 18.\n", [SUMS_INTERRUPT])
    transfer = guard_tool(ledger.transfer, run=run)
    outcome = await transfer(to="bob", amount=18)
    assert isinstance(outcome, ToolRefusal)
    assert ledger.writes == []
    assert outcome.tool == "transfer" and dict(outcome.arguments) == {"to": "bob", "amount": 18}
    assert [(r.stage, r.source, r.message) for r in outcome.reasons] == [("reasoning", "sums", "12 + 7 is 19, not 18")]
    assert outcome.feedback == "12 + 7 is 19, not 18"
    assert json.loads(outcome.to_message()) == {
        "refused": True, "tool": "transfer", "arguments": {"to": "bob", "amount": 18},
        "reasons": ["12 + 7 is 19, not 18"], "feedback": "12 + 7 is 19, not 18"}
    assert transfer.refusals == 1 and transfer.calls == 0


async def test_barrier_waits_for_a_slow_check_before_the_tool_runs() -> None:
    order: list[str] = []

    @verifier(name="slow-sums", action="interrupt")
    async def slow_sums(step: Step) -> Fail | None:
        await anyio.sleep(0.2)
        order.append(f"checked {step.text.strip()!r}")
        return check_sums(step)

    def pay(amount: int) -> int:
        order.append("paid")
        return amount

    monitor = Monitor(Scripted(["So 2 + 2 = 5.\n", "Pay 5."]), verifiers=[slow_sums])
    async with monitor.stream("p") as run:
        async for event in run:  # the agent acts once the step that led to the call is written
            if event.kind == "chunk" and "\n" in run.text:
                break
        pay_guarded = guard_tool(pay, run=run)
        outcome = await pay_guarded(5)
    assert isinstance(outcome, ToolRefusal)
    assert order[0] == "checked 'So 2 + 2 = 5.'" and "paid" not in order
    assert outcome.reasons[0].message == "2 + 2 is 4, not 5"


async def test_live_run_passes_barrier_after_checks_finish() -> None:
    order: list[str] = []

    @verifier(name="slow-sums")
    async def slow_sums(step: Step) -> Fail | None:
        await anyio.sleep(0.1)
        order.append("checked")
        return check_sums(step)

    monitor = Monitor(Scripted("So 2 + 2 = 4.\n"), verifiers=[slow_sums])
    async with monitor.stream("p") as run:
        async for event in run:
            if event.kind == "chunk" and "\n" in run.text:
                break
        tool = guard_tool(lambda: order.append("called") or "ok", run=run, name="act")
        assert await tool() == "ok"
    assert order == ["checked", "called"]


async def test_argument_check_callable_refuses_with_its_feedback() -> None:
    ledger = Ledger()
    run = await finished_run("Fine.\n", [])
    transfer = guard_tool(ledger.transfer, run=run, verifiers=[at_most(100)])
    refused = await transfer("bob", 500)
    assert isinstance(refused, ToolRefusal)
    assert [(r.stage, r.source, r.message, r.feedback) for r in refused.reasons] == [
        ("arguments", "amount-limit", "amount 500 exceeds the limit of 100", "Transfers are limited to 100.")]
    assert refused.feedback == "Transfers are limited to 100."
    assert await transfer("bob", 100) == "sent 100 to bob"
    assert ledger.writes == [("bob", 100)]


async def test_verifier_over_rendered_arguments_names_the_argument() -> None:
    ledger = Ledger()
    run = await finished_run("Fine.\n", [])
    transfer = guard_tool(ledger.transfer, run=run, verifiers=[AmountLine()])
    assert render_arguments({"to": "bob", "amount": -5}) == 'to = "bob"\namount = -5\n'
    refused = await transfer(to="bob", amount=-5)
    assert isinstance(refused, ToolRefusal)
    assert [(r.source, r.argument, r.feedback) for r in refused.reasons] == [
        ("positive-amount", "amount", "Use a positive amount.")]
    assert ledger.writes == []


async def test_async_argument_check_and_verdict_kinds() -> None:
    async def never_on_sunday(args: Mapping[str, Any]) -> list[Any]:
        await anyio.sleep(0)
        return [Pass(), Fail("not on sundays")] if args["day"] == "sunday" else [Pass()]

    async def book(day: str) -> str:
        return f"booked {day}"

    tool = guard_tool(book, read_only=True, verifiers=[never_on_sunday])
    assert await tool("monday") == "booked monday"
    refused = await tool("sunday")
    assert isinstance(refused, ToolRefusal)
    assert [r.message for r in refused.reasons] == ["not on sundays"]


async def test_read_only_tools_skip_the_barrier() -> None:
    run = await finished_run("So 12 + 7 = 18.\n", [SUMS_INTERRUPT])
    lookup = guard_tool(lambda account: 42, run=run, read_only=True, name="balance")
    write = guard_tool(lambda account: 42, run=run, name="write")
    assert await lookup("bob") == 42
    assert isinstance(await write("bob"), ToolRefusal)


async def test_warnings_in_the_reasoning_do_not_block_the_call() -> None:
    sums_warn = verifier(check_sums, name="sums", action="warn")
    run = await finished_run("So 12 + 7 = 18.\n", [sums_warn])
    assert [i.action.value for i in run.result.interventions] == ["warn"]
    tool = guard_tool(lambda: "done", run=run, name="act")
    assert await tool() == "done"


async def test_refusal_can_raise() -> None:
    run = await finished_run("So 12 + 7 = 18.\n", [SUMS_INTERRUPT])
    tool = guard_tool(lambda: None, run=run, name="noop", on_refusal="raise")
    with pytest.raises(ToolRefused) as info:
        await tool()
    assert info.value.refusal.tool == "noop"
    assert str(info.value) == "noop refused: 12 + 7 is 19, not 18"


async def test_model_arguments_that_do_not_fit_are_refused_not_raised() -> None:
    ledger = Ledger()
    run = await finished_run("Fine.\n", [])
    transfer = guard_tool(ledger.transfer, run=run)
    refused = await transfer.call({"to": "bob"})
    assert isinstance(refused, ToolRefusal)
    assert refused.reasons[0].stage == "arguments"
    assert refused.reasons[0].message == "missing a required argument: 'amount'"
    assert isinstance(await transfer.call(["bob", 5]), ToolRefusal)  # type: ignore[arg-type]
    assert await transfer.call({"to": "bob", "amount": 3}) == "sent 3 to bob"
    with pytest.raises(TypeError):
        await transfer("bob")


async def test_barrier_timeout_refuses_the_call() -> None:
    @verifier(name="stuck", timeout=30)
    async def stuck(step: Step) -> None:
        await anyio.sleep(30)

    monitor = Monitor(Scripted("One step.\n"), verifiers=[stuck])
    async with monitor.stream("p") as run:
        async for event in run:
            if event.kind == "chunk" and "\n" in run.text:
                break
        tool = guard_tool(lambda: "done", run=run, name="act", barrier_timeout=0.1)
        refused = await tool()
    assert isinstance(refused, ToolRefusal)
    assert [(r.stage, r.source) for r in refused.reasons] == [("timeout", "barrier")]


async def test_failing_or_undecided_checks_refuse_when_fail_closed() -> None:
    def broken(args: Mapping[str, Any]) -> None:
        raise RuntimeError("database down")

    def undecided(args: Mapping[str, Any]) -> Unknown:
        return Unknown(reason="cannot tell")

    async def slow(args: Mapping[str, Any]) -> None:
        await anyio.sleep(5)

    closed = guard_tool(lambda x: x, read_only=True, name="f", verifiers=[broken, undecided, slow], check_timeout=0.1)
    refused = await closed(1)
    assert isinstance(refused, ToolRefusal)
    assert [(r.stage, r.source, r.message) for r in refused.reasons] == [
        ("error", "broken", "argument check 'broken' failed with an error (details in the log)"),
        ("arguments", "undecided", "could not decide: cannot tell"),
        ("timeout", "slow", "argument check 'slow' did not finish within 0.1 s")]
    assert isinstance(refused.reasons[0].error, RuntimeError)  # for the program; never in what the model reads
    assert "database down" not in refused.to_message() and "database down" not in json.dumps(refused.to_dict())
    opened = guard_tool(lambda x: x, read_only=True, name="f", verifiers=[broken, undecided, slow],
                        check_timeout=0.1, fail_closed=False)
    assert await opened(1) == 1


async def test_write_tool_needs_a_run_and_use_run_provides_it() -> None:
    tool = guard_tool(lambda: "ok", name="act")
    with pytest.raises(ConfigError, match="has no run to wait for"):
        await tool()
    run = await finished_run("Fine.\n", [])
    with use_run(run):
        assert await tool() == "ok"


async def test_in_thread_and_decorator_forms() -> None:
    import threading

    main = threading.get_ident()

    @guard_tool(read_only=True, in_thread=True)
    def where() -> bool:
        return threading.get_ident() != main

    assert isinstance(where, GuardedTool)
    assert await where() is True


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ConfigError, match="barrier_timeout"):
        guard_tool(lambda: None, barrier_timeout=0)
    with pytest.raises(ConfigError, match="on_refusal"):
        guard_tool(lambda: None, on_refusal="ignore")
    with pytest.raises(ConfigError, match="neither a Verifier nor callable"):
        guard_tool(lambda: None, verifiers=[42])  # type: ignore[list-item]
