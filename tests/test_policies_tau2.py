"""The tau2-bench retail policy (examples/policies/tau2_retail.py): its rules and modelled effects on a small store,
and on tau2's own data: every task's expected calls allowed (but the two that break policy.md, which tau2's tools
reject too), and every violation built from the tasks refused by the rule that it breaks."""

from __future__ import annotations

import collections
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from interlock.monitor.agents import ToolCall
from interlock.monitor.policies import Message, State, load_policy, parse_conversation

from tests.retail_fixture import small_retail_db

ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = ROOT / "examples" / "policies" / "tau2_retail.py"
policy = load_policy(POLICY_FILE)


def _converter() -> Any:
    spec = importlib.util.spec_from_file_location("tau2_conversations", POLICY_FILE.with_name("tau2_conversations.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tc = _converter()

ANN = ToolCall("find_user_id_by_name_zip", {"first_name": "ann", "last_name": "LEE", "zip": "10001"})


def yes(call: ToolCall) -> list[Any]:
    return [Message("assistant", f"I will {call.name} with {json.dumps(dict(call.arguments))}. Confirm?"),
            Message("user", "yes"), call]


async def check(items: list[Any], db: dict[str, Any] | None = None) -> list[tuple[bool, str | None, str]]:
    decisions = await policy.check_conversation(items, State(db or small_retail_db()))
    return [(d.allowed, d.rule, d.reason) for d in decisions]


# -- on a small store (no shared data needed) ------------------------------------------------------------------

async def test_authentication_comes_first_and_only_one_user_is_helped() -> None:
    got = await check([ToolCall("list_all_product_types", {}), ToolCall("calculate", {"expression": "1+1"}),
                       ToolCall("find_user_id_by_email", {"email": "nobody@example.com"}),
                       ToolCall("get_user_details", {"user_id": "ann_lee_1"}), ANN,
                       ToolCall("get_user_details", {"user_id": "ann_lee_1"}),
                       ToolCall("get_user_details", {"user_id": "bob_kay_2"}),
                       ToolCall("find_user_id_by_email", {"email": "Bob.Kay@example.com"}),
                       ToolCall("find_user_id_by_email", {"email": "ANN.LEE@example.com"}),
                       ToolCall("get_order_details", {"order_id": "#W0000004"}),
                       ToolCall("get_order_details", {"order_id": "#W9999999"})])
    assert [g[:2] for g in got] == [
        (False, "authenticate_first"), (True, None), (True, None), (False, "authenticate_first"), (True, None),
        (True, None), (False, "own_user_only"), (False, "one_user_per_conversation"), (True, None),
        (False, "own_orders_only"), (True, None)]  # an order that does not exist: the tool itself says so
    assert got[0][2].startswith("the user is not authenticated yet: before list_all_product_types, find their user "
                                "id with find_user_id_by_email")
    assert got[7][2] == ("this conversation has authenticated the user ann_lee_1; you can only help one user per "
                         "conversation and must deny requests about any other user")
    assert got[9][2] == ("order #W0000004 does not belong to the authenticated user ann_lee_1: only the authenticated "
                         "user's own orders can be used in this conversation")


async def test_a_transfer_ends_the_conversation_for_tools_and_needs_no_authentication() -> None:
    transfer = ToolCall("transfer_to_human_agents", {"summary": "wants a person"})
    got = await check([transfer, ANN])
    assert got == [(True, None, ""), (False, "nothing_after_transfer", "the user has been transferred to a human "
                                                                      "agent: no more tool calls in this conversation")]


async def test_status_rules_follow_the_modelled_effects() -> None:
    modify = ToolCall("modify_pending_order_items", {"order_id": "#W0000001", "item_ids": ["2000000001"],
                                                     "new_item_ids": ["2000000002"],
                                                     "payment_method_id": "gift_card_1"})
    address = ToolCall("modify_pending_order_address", {"order_id": "#W0000001", "address1": "2 Oak St",
                                                        "address2": "", "city": "Salem", "state": "OR",
                                                        "country": "USA", "zip": "97301"})
    cancel = ToolCall("cancel_pending_order", {"order_id": "#W0000001", "reason": "ordered by mistake"})
    got = await check([ANN, *yes(address), *yes(modify), *yes(modify), *yes(address), *yes(cancel)])
    assert [g[:2] for g in got] == [(True, None), (True, None), (True, None),
                                    (False, "modify_pending_order_items_needs_pending"),
                                    (False, "modify_pending_order_address_needs_pending"),
                                    (False, "cancel_pending_order_needs_pending")]
    assert got[3][2] == ("order #W0000001 is 'pending (item modified)': modify_pending_order_items needs an order "
                         "whose status is 'pending'; its items were modified, so it can no longer be cancelled or "
                         "modified")
    session = policy.session(State(small_retail_db()))
    await session.run([ANN, *yes(modify)])
    state = session.state.view
    assert state["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 15.0  # paid the 5.00
    assert [i["item_id"] for i in state["orders"]["#W0000001"]["items"]] == ["2000000002", "3000000001"]
    assert state["orders"]["#W0000001"]["payment_history"][-1] == {"transaction_type": "payment", "amount": 5.0,
                                                                  "payment_method_id": "gift_card_1"}


async def test_returns_exchanges_items_and_payments() -> None:
    def ret(items: list[str], method: str, order: str = "#W0000002") -> ToolCall:
        return ToolCall("return_delivered_order_items", {"order_id": order, "item_ids": items,
                                                         "payment_method_id": method})

    def exchange(old: list[str], new: list[str], method: str = "paypal_1") -> ToolCall:
        return ToolCall("exchange_delivered_order_items", {"order_id": "#W0000002", "item_ids": old,
                                                           "new_item_ids": new, "payment_method_id": method})

    cases = [
        (ret(["2000000001", "2000000001", "2000000001"], "paypal_1"), "items_in_order",
         "item 2000000001 is there 2 time(s), not 3 in order #W0000002; its items are: 2000000001 (T-Shirt), "
         "2000000001 (T-Shirt)"),
        (ret(["2000000001"], "credit_card_1"), "refund_to_original_or_gift_card",
         "the refund must go to the original payment method (paypal_1) or an existing gift card, not to "
         "credit_card_1"),
        (ret(["2000000001"], "credit_card_2"), "payment_method_is_users",
         "payment method credit_card_2 is not one of the user's; their payment methods are: credit_card_1, "
         "gift_card_1, paypal_1"),
        (ret([], "paypal_1"), "items_in_order", "return_delivered_order_items needs at least one item id"),
        (ret(["3000000001"], "paypal_1", "#W0000001"), "return_delivered_order_items_needs_delivered",
         "order #W0000001 is 'pending': return_delivered_order_items needs an order whose status is 'delivered'; a "
         "pending order can be cancelled or modified instead"),
        (exchange(["2000000001"], ["3000000002"]), "new_items_match",
         "item 2000000001 is a T-Shirt but 3000000002 is a Mug: an item can only change to another option of the "
         "same product"),
        (exchange(["2000000001"], ["2000000003"]), "new_items_match",
         "the new item 2000000003 (T-Shirt: color green, size M) is not available"),
        (exchange(["2000000001"], ["2000000001"]), "new_items_match",
         "the new item 2000000001 is the item itself: choose a different option"),
        (exchange(["2000000001", "2000000001"], ["2000000002"]), "new_items_match",
         "2 item(s) to change but 1 new item(s): give one new item id for each item id, in the same order"),
        (exchange(["2000000001", "2000000001"], ["2000000002", "2000000002"], "gift_card_1"), None, ""),
    ]
    for call, rule, reason in cases:
        got = await check([ANN, *yes(call)])
        assert got[-1] == (rule is None, rule, reason), call
    short = small_retail_db()
    short["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] = 9.99
    got = await check([ANN, *yes(exchange(["2000000001", "2000000001"], ["2000000002", "2000000002"],
                                          "gift_card_1"))], short)
    assert got[-1] == (False, "gift_card_covers_difference", "the gift card's balance of 9.99 does not cover the price "
                                                             "difference of 10: choose another payment method")
    payment = [ToolCall("modify_pending_order_payment", {"order_id": "#W0000001", "payment_method_id": m})
               for m in ("credit_card_1", "gift_card_1", "paypal_1", "gift_card_1")]
    got = await check([ANN, *yes(payment[0]), *yes(payment[1]), *yes(payment[2]), *yes(payment[3])])
    assert [g[:2] for g in got[1:]] == [(False, "new_payment_method_differs"), (False, "gift_card_covers_order"),
                                        (True, None), (False, "new_payment_method_differs")]
    assert got[2][2] == ("the gift card's balance of 20 does not cover the order total of 60: choose another payment "
                         "method")
    assert got[4][2].startswith("the payment of order #W0000001 has already been changed")


async def test_cancelling_refunds_a_gift_card_at_once_and_checks_the_reason() -> None:
    cancel = ToolCall("cancel_pending_order", {"order_id": "#W0000003", "reason": "no longer needed"})
    db = small_retail_db()
    db["orders"]["#W0000003"]["status"] = "pending"
    session = policy.session(State(db))
    bad = ToolCall("cancel_pending_order", {"order_id": "#W0000003", "reason": "too slow"})
    decisions = await session.run([ANN, *yes(bad), *yes(cancel)])
    assert [(d.allowed, d.rule) for d in decisions] == [(True, None), (False, "cancel_reason"), (True, None)]
    assert decisions[1].reason == ("the cancellation reason 'too slow' is not accepted: it must be one of 'no longer "
                                   "needed', 'ordered by mistake'")
    assert session.state.view["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 30.0
    assert session.state.view["orders"]["#W0000003"]["cancel_reason"] == "no longer needed"
    assert db["orders"]["#W0000003"]["status"] == "pending"  # the loaded state is never changed


# -- on tau2's data ----------------------------------------------------------------------------------------------

async def test_every_task_s_expected_calls_are_allowed_but_the_two_that_break_the_policy(shared_data: Path) -> None:
    tasks, db = tc.load(shared_data / "tau2" / "retail")
    state = State(db)
    assert len(tasks) == 114
    refused: dict[str, list[tuple[str, str | None, str]]] = {}
    calls = 0
    for task in tasks:
        decisions = await policy.check_conversation(parse_conversation(tc.compliant(task, db)), state)
        calls += len(decisions)
        wrong = [(d.call.name, d.rule, d.reason) for d in decisions if not d.allowed]
        if wrong:
            refused[task["id"]] = wrong
        # the same with only the user's "yes" before each write (the assistant's proposals left out of the file)
        bare = await policy.check_conversation(parse_conversation(tc.compliant(task, db, propose=False)), state)
        assert [(d.allowed, d.rule) for d in bare] == [(d.allowed, d.rule) for d in decisions], task["id"]
    assert refused == {
        "64": [("exchange_delivered_order_items", "exchange_delivered_order_items_needs_delivered",
                "order #W7464385 is 'pending': exchange_delivered_order_items needs an order whose status is "
                "'delivered'; a pending order can be cancelled or modified instead")],
        "105": [("exchange_delivered_order_items", "gift_card_covers_difference",
                 "the gift card's balance of 17 does not cover the price difference of 21.1: choose another payment "
                 "method")]}
    assert set(refused) == set(tc.NONCOMPLIANT) and calls == 595


async def test_every_violation_built_from_the_tasks_is_refused_by_the_rule_it_breaks(shared_data: Path) -> None:
    tasks, db = tc.load(shared_data / "tau2" / "retail")
    state = State(db)
    kinds: collections.Counter[str] = collections.Counter()
    wrong = []
    for task in tasks:
        for v in tc.violations(task, db):
            kinds[v.kind] += 1
            decisions = await policy.check_conversation(parse_conversation(v.lines), state)
            before = [d.allowed for d in decisions[:v.index]]
            d = decisions[v.index]
            if not (all(before) and not d.allowed and d.rule == v.rule and v.reason in d.reason):
                wrong.append((v.kind, v.task, v.index, v.rule, [(x.allowed, x.rule) for x in decisions]))
    assert wrong == []
    assert set(kinds) == {"before_authentication", "second_user", "other_users_profile", "no_confirmation",
                          "confirmation_withheld", "qualified_yes", "after_transfer", "other_users_order",
                          "confirmed_other_order", "payment_unchanged", "payment_not_users", "return_pending_order",
                          "second_return_or_exchange", "other_product", "item_not_in_order", "exchange_not_delivered",
                          "second_item_modification", "cancel_after_item_modification", "gift_card_short",
                          "bad_cancel_reason", "cancel_not_pending", "refund_elsewhere", "modify_delivered_order"}
    assert sum(kinds.values()) > 1400


@pytest.mark.slow
def test_the_command_allows_the_compliant_files_and_refuses_each_violation(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "tau2" / "retail"
    subprocess.run([sys.executable, str(POLICY_FILE.with_name("tau2_conversations.py")), str(folder), str(tmp_path)],
                   check=True, timeout=300, capture_output=True)
    compliant = sorted((tmp_path / "compliant").glob("*.jsonl"))
    clean = [p for p in compliant if p.stem.removeprefix("task_") not in tc.NONCOMPLIANT]
    base = [sys.executable, "-m", "interlock", "policy", "check", str(POLICY_FILE), "--state", str(folder / "db.json")]
    done = subprocess.run([*base, *map(str, clean)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    calls = sum(1 for p in clean for line in p.read_text(encoding="utf-8").splitlines() if '"name"' in line)
    assert done.stdout.splitlines()[-1] == f"112 conversations, {calls} calls: {calls} allowed, 0 refused"
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    sample = manifest[::10]
    done = subprocess.run([*base, "--json", *(m["file"] for m in sample)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    by_file = collections.defaultdict(list)
    for r in records:
        by_file[r["file"]].append(r)
    for m in sample:
        refused = [(r["index"], r["rule"]) for r in by_file[m["file"]] if not r["allowed"]]
        assert refused[0] == (m["index"], m["rule"]), m
