"""Conversations built from tau2-bench's retail tasks, to check ``tau2_retail.py`` on: compliant ones (each task's
expected tool calls, with the user's explicit yes before each write) and violating ones (what a policy-breaking
agent does: act before authenticating, cancel a delivered order, skip the confirmation, use another user's order,
refund to a different payment method, ...), each with the call that must be refused and the rule that must refuse it.

    python examples/policies/tau2_conversations.py ../shared/data/tau2/retail /tmp/tau2
    interlock policy check examples/policies/tau2_retail.py --state ../shared/data/tau2/retail/db.json \\
        /tmp/tau2/compliant/*.jsonl                               # exit 1: tasks 64 and 105 (see below)
    interlock policy check examples/policies/tau2_retail.py --state ../shared/data/tau2/retail/db.json \\
        --json /tmp/tau2/violations/*.jsonl              # each file has its refusal (manifest.json says which)

tau2 lists no lookup for 45 tasks (only their writes): the compliant conversation of such a task starts with the
lookup the policy requires (by email when the user knows it, else by name and zip code, from the database). Two
tasks' expected calls include one that breaks policy.md and that tau2's own tools reject too, so the policy refuses
it: task 64 exchanges a pending order ("Non-delivered order cannot be exchanged"), task 105 pays an exchange's
price difference of 21.10 with a gift card holding 17.00 ("Insufficient gift card balance").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRITES = ("cancel_pending_order", "modify_pending_order_address", "modify_pending_order_payment",
          "modify_pending_order_items", "return_delivered_order_items", "exchange_delivered_order_items",
          "modify_user_address")
LOOKUPS = ("find_user_id_by_email", "find_user_id_by_name_zip")
NEEDS_NO_USER = (*LOOKUPS, "calculate", "transfer_to_human_agents")

Line = dict[str, Any]
# tasks whose expected calls include one that breaks policy.md, and that tau2's own tools reject: task 64 exchanges
# a pending order, task 105 pays an exchange's difference of 21.10 with a gift card holding 17.00
NONCOMPLIANT = {"64": "exchange_delivered_order_items_needs_delivered", "105": "gift_card_covers_difference"}


@dataclass(frozen=True)
class Violation:
    """A conversation that breaks the policy once: the call at ``index`` (counting calls from 0) must be refused by
    ``rule``, with ``reason`` in its reason; every call before it is compliant."""

    kind: str
    task: str
    lines: tuple[Line, ...]
    index: int
    rule: str
    reason: str


def load(folder: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    folder = Path(folder)
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    db = json.loads((folder / "db.json").read_text(encoding="utf-8"))
    return tasks, db


def actions(task: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"name": a["name"], "arguments": dict(a["arguments"])}
            for a in (task["evaluation_criteria"].get("actions") or [])]


def owner(action: Mapping[str, Any], db: Mapping[str, Any]) -> str | None:
    args = action["arguments"]
    if "user_id" in args:
        return str(args["user_id"])
    found = db["orders"].get(args.get("order_id"))
    return None if found is None else str(found["user_id"])


def lookup_for(user_id: str, task: Mapping[str, Any], db: Mapping[str, Any]) -> dict[str, Any]:
    """The authentication call an agent makes for this user: by email when the user knows it, else name and zip."""
    user = db["users"][user_id]
    known = str(task["user_scenario"]["instructions"].get("known_info") or "")
    if "@" in known:
        return {"name": "find_user_id_by_email", "arguments": {"email": user["email"]}}
    return {"name": "find_user_id_by_name_zip", "arguments": {"first_name": user["name"]["first_name"],
                                                                 "last_name": user["name"]["last_name"],
                                                                 "zip": user["address"]["zip"]}}


def with_authentication(task: Mapping[str, Any], db: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The task's calls, with the lookup the policy requires first when tau2 lists only the writes."""
    calls = actions(task)
    first = next((i for i, c in enumerate(calls) if c["name"] not in NEEDS_NO_USER), None)
    if first is None or any(c["name"] in LOOKUPS for c in calls[:first]):
        return calls
    user = next((u for u in (owner(c, db) for c in calls) if u is not None), None)
    return calls if user is None else [lookup_for(user, task, db), *calls]


def proposal(call: Mapping[str, Any]) -> str:
    args = call["arguments"]
    details = "; ".join(f"{k}: {json.dumps(v)}" for k, v in args.items())
    return f"Here is what I will do: {call['name'].replace('_', ' ')} ({details}). Do you confirm (yes/no)?"


def conversation(task: Mapping[str, Any], calls: Sequence[Mapping[str, Any]], *, yes: str = "yes",
                 confirm: bool = True, propose: bool = True) -> list[Line]:
    """A conversation: the user's request, then the calls, each write after a proposal (unless ``propose`` is
    false: only the user's answer) and the user's answer."""
    request = str(task["user_scenario"]["instructions"].get("reason_for_call") or "I need help with an order.")
    lines: list[Line] = [{"role": "user", "content": request}]
    for call in calls:
        if call["name"] in WRITES and confirm:
            if propose:
                lines.append({"role": "assistant", "content": proposal(call)})
            lines.append({"role": "user", "content": yes})
        lines.append({"name": call["name"], "arguments": dict(call["arguments"])})
    return lines


def compliant(task: Mapping[str, Any], db: Mapping[str, Any], *, propose: bool = True) -> list[Line]:
    return conversation(task, with_authentication(task, db), propose=propose)


def finds(call: Mapping[str, Any], db: Mapping[str, Any]) -> str | None:
    """The user a lookup finds in the database, as tau2's tools look (some tasks' first lookup finds nobody)."""
    args = call["arguments"]
    for uid, u in db["users"].items():
        if call["name"] == "find_user_id_by_email":
            if u["email"].lower() == str(args["email"]).lower():
                return str(uid)
        elif (u["name"]["first_name"].lower(), u["name"]["last_name"].lower(), u["address"]["zip"]) == (
                str(args["first_name"]).lower(), str(args["last_name"]).lower(), args["zip"]):
            return str(uid)
    return None


def _user_orders(db: Mapping[str, Any], user_id: str) -> list[dict[str, Any]]:
    return [db["orders"][o] for o in db["users"][user_id]["orders"] if o in db["orders"]]


def _violation(kind: str, task: Mapping[str, Any], lines: list[Line], index: int, rule: str,
               reason: str) -> Violation:
    return Violation(kind, str(task["id"]), tuple(lines), index, rule, reason)


def violations(task: Mapping[str, Any], db: Mapping[str, Any]) -> Iterator[Violation]:
    """Every kind of violation this task lends itself to (at most one of each kind)."""
    calls = with_authentication(task, db)
    writes = [i for i, c in enumerate(calls) if c["name"] in WRITES]
    user = next((u for u in (owner(c, db) for c in calls) if u is not None), None)
    if task["id"] in NONCOMPLIANT:  # its expected calls already break the policy once (see the module's docstring)
        return
    first_lookup = next((i for i, c in enumerate(calls) if c["name"] in LOOKUPS and finds(c, db)), None)

    # act before authenticating: the same calls without any lookup
    if first_lookup is not None:
        rest = [c for c in calls if c["name"] not in LOOKUPS]
        bad = next((i for i, c in enumerate(rest) if c["name"] not in NEEDS_NO_USER), None)
        if bad is not None:
            yield _violation("before_authentication", task, conversation(task, rest), bad, "authenticate_first",
                             "not authenticated")

    if user is not None and first_lookup is not None:
        # a second user in the same conversation
        other = next(u for u in db["users"] if u != user)
        lookup = lookup_for(other, task, db)
        extra = [*calls[: first_lookup + 1], lookup]
        yield _violation("second_user", task, conversation(task, extra), first_lookup + 1,
                         "one_user_per_conversation", "one user per conversation")
        # another user's profile
        extra = [*calls[: first_lookup + 1], {"name": "get_user_details", "arguments": {"user_id": other}}]
        yield _violation("other_users_profile", task, conversation(task, extra), first_lookup + 1, "own_user_only",
                         "does not belong to the authenticated user")

        yield from _payment_violations(task, db, calls[: first_lookup + 1], user)

    if not writes or user is None:
        return
    w = writes[0]
    call = calls[w]
    name, args = call["name"], call["arguments"]

    # no confirmation before the first write; a "no" for an answer
    lines = [*conversation(task, calls[:w]), {"name": name, "arguments": args}]
    yield _violation("no_confirmation", task, lines, w, "explicit_confirmation", "explicit yes")
    lines = conversation(task, calls[:w]) + conversation(task, [call], yes="No, wait, not yet.")[1:]
    yield _violation("confirmation_withheld", task, lines, w, "explicit_confirmation", "not an explicit yes")
    lines = conversation(task, calls[:w]) + conversation(task, [call], yes="Yes, but change the color first.")[1:]
    yield _violation("qualified_yes", task, lines, w, "explicit_confirmation", "not an explicit yes")

    if "order_id" in args:
        mine = db["orders"][args["order_id"]]
        # the order of another user, in the same status
        other_order = next((o for o in db["orders"].values() if o["user_id"] != user and o["status"] ==
                            mine["status"]), None)
        if other_order is not None:
            changed = {**call, "arguments": {**args, "order_id": other_order["order_id"]}}
            yield _violation("other_users_order", task, conversation(task, [*calls[:w], changed]), w,
                             "own_orders_only", "does not belong to the authenticated user")
        # a yes to a proposal about another of the user's orders
        sibling = next((o for o in _user_orders(db, user) if o["order_id"] != args["order_id"]), None)
        if sibling is not None:
            elsewhere = proposal({**call, "arguments": {**args, "order_id": sibling["order_id"]}})
            lines = [*conversation(task, calls[:w]), {"role": "assistant", "content": elsewhere},
                     {"role": "user", "content": "yes"}, {"name": name, "arguments": args}]
            yield _violation("confirmed_other_order", task, lines, w, "explicit_confirmation",
                             "the user confirmed an action on")

    if name == "cancel_pending_order":
        done = next((o for o in _user_orders(db, user) if o["status"] in ("delivered", "processed")), None)
        if done is not None:
            changed = {**call, "arguments": {**args, "order_id": done["order_id"]}}
            yield _violation("cancel_not_pending", task, conversation(task, [*calls[:w], changed]), w,
                             "cancel_pending_order_needs_pending", f"is '{done['status']}'")
        changed = {**call, "arguments": {**args, "reason": "found a better price elsewhere"}}
        yield _violation("bad_cancel_reason", task, conversation(task, [*calls[:w], changed]), w, "cancel_reason",
                         "must be one of")

    if name in ("return_delivered_order_items", "exchange_delivered_order_items"):
        pending = next((o for o in _user_orders(db, user) if o["status"] == "pending"), None)
        if pending is not None and name == "exchange_delivered_order_items":
            changed = {**call, "arguments": {**args, "order_id": pending["order_id"]}}
            yield _violation("exchange_not_delivered", task, conversation(task, [*calls[:w], changed]), w,
                             f"{name}_needs_delivered", "is 'pending'")
        again = [*calls[: w + 1], call]  # the same return or exchange twice
        yield _violation("second_return_or_exchange", task, conversation(task, again), w + 1,
                         f"{name}_needs_delivered", "can be done only once")

    if name == "return_delivered_order_items":
        changed = {**call, "arguments": {**args, "item_ids": [*args["item_ids"], "1234567890"]}}
        yield _violation("item_not_in_order", task, conversation(task, [*calls[:w], changed]), w, "items_in_order",
                         "is not in order")
        mine = db["orders"][args["order_id"]]
        original = mine["payment_history"][0]["payment_method_id"]
        methods = db["users"][user]["payment_methods"]
        elsewhere = next((m for m, v in methods.items() if m != original and v["source"] != "gift_card"), None)
        if elsewhere is not None:
            changed = {**call, "arguments": {**args, "payment_method_id": elsewhere}}
            yield _violation("refund_elsewhere", task, conversation(task, [*calls[:w], changed]), w,
                             "refund_to_original_or_gift_card", "original payment method")

    if name == "modify_pending_order_items":
        again = [*calls[: w + 1], call]  # modify the same order's items a second time
        yield _violation("second_item_modification", task, conversation(task, again), w + 1,
                         "modify_pending_order_items_needs_pending", "items were modified")
        cancel = {"name": "cancel_pending_order", "arguments": {"order_id": args["order_id"],
                                                                "reason": "no longer needed"}}
        yield _violation("cancel_after_item_modification", task, conversation(task, [*calls[: w + 1], cancel]),
                         w + 1, "cancel_pending_order_needs_pending", "can no longer be cancelled")

    if name in ("modify_pending_order_items", "exchange_delivered_order_items"):
        mine = db["orders"][args["order_id"]]
        item = next(i for i in mine["items"] if i["item_id"] == args["item_ids"][0])
        foreign = next(iid for pid, p in db["products"].items() if pid != item["product_id"]
                       for iid, v in p["variants"].items() if v["available"])
        changed = {**call, "arguments": {**args, "new_item_ids": [foreign, *args["new_item_ids"][1:]]}}
        yield _violation("other_product", task, conversation(task, [*calls[:w], changed]), w, "new_items_match",
                         "same product")
        methods = db["users"][user]["payment_methods"]
        difference = _difference(db, mine, args["item_ids"], args["new_item_ids"])
        poor = next((m for m, v in methods.items() if v["source"] == "gift_card" and v["balance"] < difference),
                    None)
        if poor is not None:
            changed = {**call, "arguments": {**args, "payment_method_id": poor}}
            yield _violation("gift_card_short", task, conversation(task, [*calls[:w], changed]), w,
                             "gift_card_covers_difference", "does not cover")

    if name == "modify_pending_order_address":
        delivered = next((o for o in _user_orders(db, user) if o["status"] == "delivered"), None)
        if delivered is not None:
            changed = {**call, "arguments": {**args, "order_id": delivered["order_id"]}}
            yield _violation("modify_delivered_order", task, conversation(task, [*calls[:w], changed]), w,
                             "modify_pending_order_address_needs_pending", "is 'delivered'")

    transfer = {"name": "transfer_to_human_agents", "arguments": {"summary": "The user asked for a person."}}
    yield _violation("after_transfer", task, conversation(task, [*calls[:w], transfer, call]), w + 1,
                     "nothing_after_transfer", "transferred to a human agent")


def _payment_violations(task: Mapping[str, Any], db: Mapping[str, Any], before: list[dict[str, Any]],
                        user: str) -> Iterator[Violation]:
    """Payment changes of one of the user's pending orders that break the payment rules."""
    pending = next((o for o in _user_orders(db, user) if o["status"] == "pending"), None)
    if pending is None:
        return
    look = {"name": "get_order_details", "arguments": {"order_id": pending["order_id"]}}
    current = pending["payment_history"][0]["payment_method_id"]
    total = pending["payment_history"][0]["amount"]

    def change(method: str) -> list[dict[str, Any]]:
        return [*before, look, {"name": "modify_pending_order_payment",
                                "arguments": {"order_id": pending["order_id"], "payment_method_id": method}}]

    at = len(before) + 1
    yield _violation("payment_unchanged", task, conversation(task, change(current)), at, "new_payment_method_differs",
                     "choose a different payment method")
    stranger = next(m for u, v in db["users"].items() if u != user for m in v["payment_methods"])
    yield _violation("payment_not_users", task, conversation(task, change(stranger)), at, "payment_method_is_users",
                     "is not one of the user's")
    methods = db["users"][user]["payment_methods"]
    poor = next((m for m, v in methods.items() if v["source"] == "gift_card" and v["balance"] < total and m != current),
                None)
    if poor is not None:
        yield _violation("gift_card_short", task, conversation(task, change(poor)), at, "gift_card_covers_order",
                         "does not cover the order total")
    returned = {"name": "return_delivered_order_items", "arguments": {"order_id": pending["order_id"],
                                                                      "item_ids": ["0000000000"],
                                                                      "payment_method_id": current}}
    yield _violation("return_pending_order", task, conversation(task, [*before, look, returned]), at,
                     "return_delivered_order_items_needs_delivered", "is 'pending'")


def _difference(db: Mapping[str, Any], order: Mapping[str, Any], old: Sequence[str], new: Sequence[str]) -> float:
    prices = {iid: v["price"] for p in db["products"].values() for iid, v in p["variants"].items()}
    held = {i["item_id"]: i["price"] for i in order["items"]}
    return sum(prices[n] - held[o] for o, n in zip(old, new, strict=True))


def write_jsonl(path: Path, lines: Sequence[Line]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: tau2_conversations.py TAU2_RETAIL_FOLDER OUTPUT_FOLDER", file=sys.stderr)
        return 2
    tasks, db = load(argv[0])
    out = Path(argv[1])
    (out / "compliant").mkdir(parents=True, exist_ok=True)
    (out / "violations").mkdir(parents=True, exist_ok=True)
    manifest = []
    for task in tasks:
        write_jsonl(out / "compliant" / f"task_{task['id']}.jsonl", compliant(task, db))
        for v in violations(task, db):
            path = out / "violations" / f"{v.kind}_task_{v.task}.jsonl"
            write_jsonl(path, v.lines)
            manifest.append({"file": str(path), "kind": v.kind, "task": v.task, "index": v.index, "rule": v.rule,
                             "reason": v.reason})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"{len(tasks)} compliant conversations and {len(manifest)} violations in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
