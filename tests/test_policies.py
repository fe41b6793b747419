"""The tool-call policy API: declaring tools and rules, what a rule's outcome does to a call (the first refusal
decides; fail-closed unless a rule says otherwise), timeouts, the copy-on-write state and its effects, a live state,
the rule shapes (only_after, one_of, status_is, belongs_to_user, confirmed) and z3 constraints."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.monitor.agents import ToolCall
from interlock.monitor.errors import InterlockError
from interlock.monitor.policies import (
    ALLOW,
    LiveState,
    Message,
    Policy,
    PolicyDefinitionError,
    PolicyError,
    Refuse,
    RuleContext,
    State,
    StateError,
    Undecided,
    belongs_to_user,
    confirmed,
    explicit_yes,
    holds,
    one_of,
    only_after,
    status_is,
)

ORDERS = {"orders": {"1": {"id": "1", "owner": "ann", "status": "pending", "total": 30.0},
                     "2": {"id": "2", "owner": "ann", "status": "delivered", "total": 10.0},
                     "3": {"id": "3", "owner": "bob", "status": "pending", "total": 5.0}},
          "users": {"ann": {"balance": 20.0}, "bob": {"balance": 1.0}}}


def store() -> Policy:
    policy = Policy("store")
    policy.tool("login", {"user": str})
    policy.tool("get_order", {"order_id": str})
    policy.tool("cancel", {"order_id": str, "reason": str}, writes=True)
    policy.tool("note", {"text": str, "tags": list[str] | None}, optional=["tags"])
    return policy


async def decide(policy: Policy, items: list[Any], state: Any = None) -> list[Any]:
    return await policy.check_conversation(items, state if state is not None else State(ORDERS))


# -- declaring ----------------------------------------------------------------------------------------------------

def test_definition_errors_name_what_is_wrong() -> None:
    policy = store()
    with pytest.raises(PolicyDefinitionError, match="the tool 'login' is declared twice"):
        policy.tool("login", {"user": str})
    with pytest.raises(PolicyDefinitionError, match="unsupported type"):
        policy.tool("bad", {"when": dt.date})
    with pytest.raises(PolicyDefinitionError, match="optional names arguments it does not declare"):
        policy.tool("bad2", {"a": str}, optional=["b"])
    with pytest.raises(PolicyDefinitionError, match="a lambda rule needs a name"):
        policy.add(lambda ctx: None)
    policy.add(lambda ctx: None, name="anything")
    with pytest.raises(PolicyDefinitionError, match="two rules are named 'anything'"):
        policy.add(lambda ctx: None, name="anything")
    with pytest.raises(PolicyDefinitionError, match=r"must take \(state, call\)"):
        policy.effect("cancel")(lambda state: None)
    policy.add(lambda ctx: None, name="about_ghosts", on="ghost")
    with pytest.raises(PolicyDefinitionError, match="the rule 'about_ghosts' is about tools the policy does not "
                                                    "declare: ghost"):
        policy.validate()
    assert issubclass(PolicyDefinitionError, PolicyError) and issubclass(PolicyError, InterlockError)
    with pytest.raises(TypeError, match="Refuse needs a reason"):
        Refuse("  ")


async def test_arguments_are_checked_against_the_declaration_first() -> None:
    policy = store()
    decisions = await decide(policy, [ToolCall("get_order", {}), ToolCall("get_order", {"order_id": 1}),
                                      ToolCall("get_order", {"order_id": "1", "x": 2}),
                                      ToolCall("note", {"text": "hi"}), ToolCall("note", {"text": "hi", "tags": [1]}),
                                      ToolCall("launch", {})])
    assert [(d.allowed, d.rule, d.reason) for d in decisions] == [
        (False, "arguments", "get_order needs the argument 'order_id' (a string); call it as get_order(order_id)"),
        (False, "arguments", "the argument 'order_id' of get_order must be a string, not int"),
        (False, "arguments", "get_order has no argument 'x'; call it as get_order(order_id)"),
        (True, None, ""),
        (False, "arguments", "the argument 'tags' of note must be a list of strings or null, not list"),
        (False, "known-tool", "there is no tool named 'launch'; the tools are: cancel, get_order, login, note"),
    ]
    loose = Policy("loose", unknown_tools="allow")
    loose.tool("a", {})
    assert [d.allowed for d in await decide(loose, [ToolCall("b", {"anything": 1})])] == [True]


async def test_rules_run_in_order_and_the_first_refusal_decides() -> None:
    policy = store()
    ran: list[str] = []

    @policy.rule(on="cancel")
    def first(ctx: RuleContext) -> Any:
        ran.append("first")
        return ALLOW

    @policy.rule(writes=True)
    def second(ctx: RuleContext) -> Any:
        ran.append("second")
        return Refuse("second says no", feedback="ask first")

    @policy.rule
    def third(ctx: RuleContext) -> Any:
        ran.append("third")
        return Refuse("third says no")

    (d,) = await decide(policy, [ToolCall("cancel", {"order_id": "1", "reason": "x"})])
    assert ran == ["first", "second"]
    assert (d.allowed, d.rule, d.reason, d.feedback) == (False, "second", "second says no", "ask first")
    assert d.rules == ("known-tool", "arguments", "first", "second")
    ran.clear()
    (d,) = await decide(policy, [ToolCall("get_order", {"order_id": "1"})])
    assert ran == ["third"] and d.reason == "third says no"
    assert "second [write tools]" in policy.describe() and "first [cancel]" in policy.describe()


async def test_a_rule_that_cannot_decide_refuses_unless_it_is_not_fail_closed() -> None:
    policy = store()
    policy.add(lambda ctx: ctx.state["orders"][ctx.arguments["order_id"]] and None, name="lookup", on="get_order")
    policy.add(lambda ctx: Undecided("no idea"), name="unsure", on="cancel")
    policy.add(lambda ctx: "yes", name="chatty", on="login")
    (missing,) = await decide(policy, [ToolCall("get_order", {"order_id": "9"})])
    assert (missing.allowed, missing.rule, missing.reason) == (
        False, "lookup", "the policy could not decide (lookup): the rule raised KeyError: '9'")
    (unsure,) = await decide(policy, [ToolCall("cancel", {"order_id": "1", "reason": "x"})])
    assert unsure.reason == "the policy could not decide (unsure): no idea" and unsure.refusal.undecided
    (chatty,) = await decide(policy, [ToolCall("login", {"user": "ann"})])
    assert chatty.reason.endswith("the rule returned str, not Allow, Refuse, Undecided or None")

    lenient = store()
    lenient.add(lambda ctx: Undecided("no idea"), name="unsure", on="cancel", fail_closed=False)
    (d,) = await decide(lenient, [ToolCall("cancel", {"order_id": "1", "reason": "x"})])
    assert d.allowed and [(n.rule, n.reason) for n in d.notes] == [("unsure", "no idea")]


async def test_async_rules_and_a_hung_rule_are_bounded_by_the_check_timeout() -> None:
    policy = Policy("slow", check_timeout=0.3)
    policy.tool("a", {})
    policy.tool("b", {})
    policy.tool("c", {})

    @policy.rule(on="a")
    async def remote(ctx: RuleContext) -> Any:
        await anyio.sleep(0.01)
        return Refuse("remote says no")

    @policy.rule(on="b")
    def spins(ctx: RuleContext) -> Any:
        time.sleep(5)
        return None

    @policy.rule(on="c")
    async def hangs(ctx: RuleContext) -> Any:
        await anyio.sleep(60)
        return None

    started = time.monotonic()
    a, b, c = await decide(policy, [ToolCall("a", {}), ToolCall("b", {}), ToolCall("c", {})])
    assert time.monotonic() - started < 3
    assert a.reason == "remote says no"
    assert (b.rule, b.reason) == ("spins", "the policy could not decide (spins): the policy's rules did not decide "
                                           "within 0.3 s (the rule 'spins' was still running)")
    assert (c.rule, c.allowed) == ("hangs", False) and "within 0.3 s" in c.reason


# -- state and effects --------------------------------------------------------------------------------------------

def test_state_views_are_read_only_and_forks_copy_only_what_they_edit() -> None:
    base: dict[str, Any] = {"orders": {"1": {"status": "pending", "items": [{"p": 1}]}, "2": {"status": "x"}}}
    state = State(base)
    view = state.view
    with pytest.raises(TypeError):
        view["orders"]["1"]["status"] = "cancelled"  # type: ignore[index]
    assert not hasattr(view["orders"], "pop") and view["orders"]["1"]["items"][0]["p"] == 1
    assert view["orders"]["1"].thaw() == {"status": "pending", "items": [{"p": 1}]}
    a, b = state.fork(), state.fork()
    a.set("orders", "1", "status", "cancelled")
    a.edit("orders", "1")["items"][0]["p"] = 9  # a shallow copy first, then a deep one: nothing shared is touched
    a.set("session", "user", "ann")  # a missing mapping is created
    assert a.view["orders"]["1"].thaw() == {"status": "cancelled", "items": [{"p": 9}]}
    assert b.view["orders"]["1"].thaw() == {"status": "pending", "items": [{"p": 1}]}
    assert base == {"orders": {"1": {"status": "pending", "items": [{"p": 1}]}, "2": {"status": "x"}}}
    assert a.view["orders"]["2"] is not None and a.get("session", "user") == "ann" and b.get("session") is None
    c = a.fork()
    c.edit("orders", "1")["status"] = "lost"
    assert a.view["orders"]["1"]["status"] == "cancelled"
    with pytest.raises(StateError, match="the state has nothing at orders/7"):
        a.edit("orders", "7")
    with pytest.raises(StateError, match="only a mapping or a list can be edited"):
        a.edit("orders", "1", "status")


def test_state_files_load_with_errors_that_name_them(tmp_path: Any) -> None:
    good = tmp_path / "s.yaml"
    good.write_text("orders:\n  '1': {status: pending}\n", encoding="utf-8")
    assert State.load(good).view["orders"]["1"]["status"] == "pending"
    bad = tmp_path / "s.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateError, match=r"s\.json is not valid JSON"):
        State.load(bad)
    scalar = tmp_path / "n.json"
    scalar.write_text("3", encoding="utf-8")
    with pytest.raises(StateError, match="must hold an object or a list, not int"):
        State.load(scalar)
    with pytest.raises(StateError, match="cannot read the state file"):
        State.load(tmp_path / "missing.json")


async def test_effects_of_allowed_calls_change_what_later_calls_see_and_nothing_else() -> None:
    policy = store()
    policy.add(status_is("order_id", "pending", lookup=lambda s, o: s["orders"].get(o), what="order",
                         hints={"cancelled": "it was cancelled already"}), on="cancel", name="pending_only")

    @policy.effect("cancel")
    def cancelled(state: State, call: ToolCall) -> None:
        state.edit("orders", call.arguments["order_id"])["status"] = "cancelled"

    shared = State(ORDERS)
    cancel = ToolCall("cancel", {"order_id": "1", "reason": "x"})
    first, again = await decide(policy, [cancel, cancel], shared)
    assert first.allowed and again.reason == ("order 1 is 'cancelled': cancel needs an order whose status is "
                                              "'pending'; it was cancelled already")
    assert shared.view["orders"]["1"]["status"] == "pending" and ORDERS["orders"]["1"]["status"] == "pending"
    # a call that failed has no effect
    session = policy.session(shared)
    decision = await session.check(cancel)
    session.record(cancel, decision, error="the server was down")
    assert (await session.check(cancel)).allowed


async def test_an_effect_that_fails_leaves_every_later_call_refused() -> None:
    policy = store()

    @policy.effect("cancel")
    def broken(state: State, call: ToolCall) -> None:
        state.edit("orders", "nope")

    decisions = await decide(policy, [ToolCall("cancel", {"order_id": "1", "reason": "x"}),
                                      ToolCall("get_order", {"order_id": "1"})])
    assert decisions[0].allowed and not decisions[1].allowed
    assert decisions[1].rule == "state-model"
    assert decisions[1].reason == ("the policy's model of the state is unknown since the effect 'broken' of cancel "
                                   "failed (the state has nothing at orders/nope); no further call can be checked")


async def test_a_live_state_is_fetched_for_each_call_and_not_modelled() -> None:
    db = {"orders": {"1": {"status": "pending"}}}
    fetched: list[int] = []

    def fetch() -> Mapping[str, Any]:
        fetched.append(1)
        return db

    policy = store()
    policy.add(status_is("order_id", "pending", lookup=lambda s, o: s["orders"].get(o), what="order"), on="cancel",
               name="pending_only")
    policy.effect("cancel")(lambda state, call: state.edit("orders", "1"))
    session = policy.session(LiveState(fetch))
    cancel = ToolCall("cancel", {"order_id": "1", "reason": "x"})
    assert (await session.submit(cancel)).allowed  # no effect applied: the system changes by itself
    assert (await session.check(cancel)).allowed
    db["orders"]["1"]["status"] = "cancelled"
    assert (await session.check(cancel)).reason.startswith("order 1 is 'cancelled'")
    assert len(fetched) == 3 and session.broken is None

    def down() -> Mapping[str, Any]:
        raise ConnectionError("db down")

    (d,) = await policy.check_conversation([cancel], LiveState(down))
    assert (d.rule, d.reason) == ("state", "the policy could not decide (state): fetching the live state failed: "
                                           "ConnectionError: db down")


# -- shapes ---------------------------------------------------------------------------------------------------------

def owner_of(state: Any, order_id: Any) -> Any:
    order = state["orders"].get(order_id)
    return None if order is None else order["owner"]


def logged_in(ctx: RuleContext) -> str | None:
    found = ctx.calls("login")
    return str(found[-1].arguments["user"]) if found else None


async def test_only_after_one_of_and_belongs_to_user() -> None:
    policy = store()
    policy.add(only_after("login"), name="login_first", on=("get_order", "cancel"))
    policy.add(belongs_to_user("order_id", owner=owner_of, user=logged_in, what="order"), on=("get_order", "cancel"))
    policy.add(only_after("get_order", same=["order_id"]), on="cancel", name="look_first")
    policy.add(one_of("reason", ("no longer needed", "ordered by mistake"), what="the reason"), on="cancel")
    decisions = await decide(policy, [
        ToolCall("get_order", {"order_id": "1"}),
        ToolCall("login", {"user": "ann"}),
        ToolCall("get_order", {"order_id": "3"}),
        ToolCall("get_order", {"order_id": "9"}),
        ToolCall("cancel", {"order_id": "1", "reason": "no longer needed"}),
        ToolCall("get_order", {"order_id": "1"}),
        ToolCall("cancel", {"order_id": "1", "reason": "cheaper elsewhere"}),
        ToolCall("cancel", {"order_id": "1", "reason": "ordered by mistake"}),
    ])
    assert [(d.allowed, d.reason) for d in decisions] == [
        (False, "get_order can only be called after login; call login first"),
        (True, ""),
        (False, "order 3 does not belong to the authenticated user ann: only the authenticated user's own orders "
                "can be used in this conversation"),
        (True, ""),  # no such order: allowed here, rules about existence say why it cannot be used
        (False, "cancel can only be called after get_order with the same order_id; call get_order first"),
        (True, ""),
        (False, "the reason 'cheaper elsewhere' is not accepted: it must be one of 'no longer needed', "
                "'ordered by mistake'"),
        (True, ""),
    ]


def conversation_with(*events: Any, call: ToolCall | None = None) -> list[Any]:
    return [*events, call or ToolCall("cancel", {"order_id": "1", "reason": "x"})]


CONFIRMATION_CASES = [
    ("no messages at all", [], "first list the action's details to the user and get an explicit yes"),
    ("a yes to a proposal", [Message("assistant", "Cancel order 1?"), Message("user", "Yes, go ahead.")], ""),
    ("a no", [Message("assistant", "Cancel order 1?"), Message("user", "No.")], "is not an explicit yes"),
    ("a qualified yes", [Message("assistant", "Cancel order 1?"), Message("user", "yes but wait")],
     "is not an explicit yes"),
    ("a yes without a proposal in the file", [Message("user", "yes")], ""),
    ("a new question after the yes", [Message("assistant", "Cancel 1?"), Message("user", "yes"),
                                      Message("assistant", "And the other one too?")],
     "the assistant asked the user something after the user's yes"),
    ("a statement after the yes", [Message("assistant", "Cancel 1?"), Message("user", "yes"),
                                   Message("assistant", "Cancelling now.")], ""),
    ("a yes already used", [Message("assistant", "Cancel 1?"), Message("user", "yes"),
                            ToolCall("cancel", {"order_id": "2", "reason": "x"})],
     "the user's yes was for the earlier cancel"),
    ("a proposal about another order", [Message("assistant", "Cancel order #W7?"), Message("user", "yes")],
     "the user confirmed an action on W7, not on 1"),
]


@pytest.mark.parametrize(("case", "events", "reason"), CONFIRMATION_CASES, ids=[c[0] for c in CONFIRMATION_CASES])
async def test_confirmed_needs_an_explicit_yes_since_the_last_proposal(case: str, events: list[Any],
                                                                       reason: str) -> None:
    policy = store()
    policy.add(confirmed(ids=r"#?W\d+|\border \d+", expected=lambda ctx: [ctx.arguments["order_id"]],
                         normalize=lambda s: s.lstrip("#").removeprefix("order ")), writes=True, name="confirmed")
    decisions = await decide(policy, conversation_with(*events))
    last = decisions[-1]
    if reason:
        assert not last.allowed and reason in last.reason, last.reason
    else:
        assert last.allowed, last.reason


async def test_a_proposal_can_be_required() -> None:
    policy = store()
    policy.add(confirmed(needs_proposal=True), writes=True, name="confirmed")
    write = ToolCall("cancel", {"order_id": "2", "reason": "x"})
    bare, proposed, reused = await decide(policy, [
        Message("user", "yes"), ToolCall("cancel", {"order_id": "1", "reason": "x"}),
        Message("assistant", "Cancel 2?"), Message("user", "yes"), write, Message("user", "yes"), write])
    assert bare.reason == "the user's yes answers no proposal: list the details of this cancel to the user, then get " \
                          "an explicit yes"
    assert proposed.allowed and reused.reason.startswith("the user's yes answers no proposal")


@pytest.mark.parametrize("text", ["yes", "Yes.", "YES please", "yes, go ahead", "Go ahead", "I confirm",
                                  "ok, no problem", "Sure!", "yes — proceed"])
def test_explicit_yes(text: str) -> None:
    assert explicit_yes(text)


@pytest.mark.parametrize("text", ["", "no", "yes?", "yes, but change the size", "Not yet", "sure, wait a second",
                                  "maybe", "yesterday I ordered it", "y'know what, cancel", "nope", "yes no"])
def test_not_an_explicit_yes(text: str) -> None:
    assert not explicit_yes(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["no", "not", "but", "wait", "don't", "instead"]))
def test_a_yes_that_takes_anything_back_or_asks_is_not_explicit(tail: str, negation: str) -> None:
    assert not explicit_yes(f"yes {negation} {tail}")
    assert not explicit_yes(f"yes {tail}?")


# -- z3 -------------------------------------------------------------------------------------------------------------

async def test_holds_decides_exactly_with_z3() -> None:
    policy = Policy("money")
    policy.tool("pay", {"amount": float, "balance": float | None})
    policy.add(holds("balance >= amount", balance=lambda c: c.arguments.get("balance"),
                     amount=lambda c: c.arguments["amount"],
                     reason="the balance {balance} does not cover {amount}"), name="covered", on="pay")
    policy.add(holds("0.1 + 0.2 == total", total=lambda c: 0.3), name="exact", on="pay")
    decisions = await decide(policy, [ToolCall("pay", {"amount": 20.0, "balance": 20.0}),
                                      ToolCall("pay", {"amount": 21.1, "balance": 17.0}),
                                      ToolCall("pay", {"amount": 1.0, "balance": None})], State({}))
    assert [(d.allowed, d.reason) for d in decisions] == [
        (True, ""), (False, "the balance 17 does not cover 21.1"),
        (False, "the policy could not decide (covered): 'balance >= amount' depends on values that are not known: "
                "balance")]


def test_holds_with_unknowns_dates_and_bad_expressions() -> None:
    ctx: Any = RuleContext(ToolCall("t", {}), (), State({}).view, Policy("p"))
    assert holds("x * 0 <= 1", x=lambda c: None)(ctx) is None  # holds whatever x is
    assert isinstance(holds("x < x", x=lambda c: None)(ctx), Refuse)  # holds for no x
    due = holds("returned - delivered <= 30", returned=lambda c: dt.date(2025, 3, 5),
                delivered=lambda c: dt.date(2025, 2, 1))
    assert isinstance(due(ctx), Refuse) and "returned = 2025-03-05" in due(ctx).reason  # 32 days
    assert holds("min(a, b) == 1 and abs(c) == 2 and not a > 5", a=lambda c: 1, b=lambda c: 3,
                 c=lambda c: -2)(ctx) is None
    for bad, message in (("a.b > 1", "uses Attribute"), ("open(a) > 1", "uses Call"), ("a > zzz", "uses 'zzz'"),
                         ("a +", "does not parse"), ("a + 1", "is not a comparison"), ("'s' > a", "uses Constant")):
        with pytest.raises(PolicyDefinitionError, match=message):
            holds(bad, a=lambda c: 1)


BASE: dict[str, Any] = {"orders": {"a": {"status": "pending", "items": [{"p": 1}, {"p": 2}]},
                                   "b": {"status": "delivered", "items": [{"p": 3}]}},
                        "users": {"u": {"cards": {"g": {"balance": 5}}}}}
PATHS = [("orders", "a"), ("orders", "b"), ("orders", "a", "items"), ("orders", "a", "items", 0),
         ("orders", "b", "items", 0), ("users", "u", "cards", "g"), ("users", "u"), ("orders",), ()]
OPS = st.lists(st.tuples(st.sampled_from(["edit", "set", "fork"]), st.sampled_from(PATHS),
                         st.sampled_from(["status", "p", "balance", "new"]), st.integers(0, 9), st.integers(0, 9)),
               max_size=25)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_layers_behave_like_private_deep_copies(ops: list[tuple[str, tuple[Any, ...], str, int, int]]) -> None:
    import copy

    original = copy.deepcopy(BASE)
    base = copy.deepcopy(BASE)
    layers = [(State(base).fork(), copy.deepcopy(base))]
    for op, path, key, value, which in ops:  # any layer, a parent after its fork included
        layer, model = layers[which % len(layers)]
        if op == "fork":
            layers.append((layer.fork(), copy.deepcopy(model)))
            continue
        target = model
        for part in path:
            target = target[part]
        if not isinstance(target, dict):
            continue
        if op == "edit":
            layer.edit(*path)[key] = value
        else:
            layer.set(*path, key, value)
        target[key] = value
        for other, other_model in layers:  # every layer still reads as its own model
            assert other.view.thaw() == other_model
    assert base == original
