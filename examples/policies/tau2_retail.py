"""tau2-bench's retail agent policy as code: every rule of its ``policy.md`` that a check can decide.

The domain (sierra-research/tau2-bench, MIT): a store's customer-service agent may cancel or modify pending orders,
return or exchange delivered ones, change a user's default address, and answer questions about the user's own
profile, orders and products. Check a conversation against the store's database::

    interlock policy check examples/policies/tau2_retail.py --state ../shared/data/tau2/retail/db.json talk.jsonl

What is checked, in the order the rules run (the first refusal decides):

- nothing happens after a transfer to a human agent;
- the user is authenticated (``find_user_id_by_email`` or ``find_user_id_by_name_zip`` found them) before any
  tool but those two, ``calculate`` and ``transfer_to_human_agents``; and only one user per conversation;
- a user id, an order and a payment method used are the authenticated user's;
- status: cancel and modify only ``pending`` orders (not once their items were modified), return and exchange only
  ``delivered`` ones; these are modelled, so a second item modification, or a return after an exchange, is refused;
- a cancellation's reason is 'no longer needed' or 'ordered by mistake';
- items: those changed are in the order (as many times as listed), each new item is an available variant of the
  same product with a different option, one new item for each old one;
- payment: a payment change goes to a different method of the user, once; a return's refund goes to the original
  payment method or a gift card; a gift card covers what it pays (z3, exact to the cent);
- an explicit yes from the user to the proposed action before every write (and a proposal that names another
  order does not count).

The effects of the writes are those of tau2's tools (``tools.md``): cancelling refunds gift cards at once,
modifying items sets the status to 'pending (item modified)' and charges or refunds the difference, and so on.
Results of calls may be left out of a conversation: the policy reads the state and models what it allowed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from interlock.monitor.agents import ToolCall
from interlock.monitor.policies import (
    Outcome,
    Policy,
    Refuse,
    RuleContext,
    State,
    belongs_to_user,
    confirmed,
    holds,
    one_of,
    status_is,
)

policy = Policy("tau2-retail", description="tau2-bench retail customer service (policy.md)")

# -- the tools (tools.md) ------------------------------------------------------------------------------------------
ADDRESS = {"address1": str, "address2": str, "city": str, "state": str, "country": str, "zip": str}
policy.tool("calculate", {"expression": str})
policy.tool("find_user_id_by_email", {"email": str})
policy.tool("find_user_id_by_name_zip", {"first_name": str, "last_name": str, "zip": str})
policy.tool("get_user_details", {"user_id": str})
policy.tool("get_order_details", {"order_id": str})
policy.tool("get_product_details", {"product_id": str})
policy.tool("get_item_details", {"item_id": str})
policy.tool("list_all_product_types", {})
policy.tool("transfer_to_human_agents", {"summary": str})
policy.tool("cancel_pending_order", {"order_id": str, "reason": str}, writes=True)
policy.tool("modify_pending_order_address", {"order_id": str, **ADDRESS}, writes=True)
policy.tool("modify_pending_order_payment", {"order_id": str, "payment_method_id": str}, writes=True)
policy.tool("modify_pending_order_items", {"order_id": str, "item_ids": list[str], "new_item_ids": list[str],
                                           "payment_method_id": str}, writes=True)
policy.tool("return_delivered_order_items", {"order_id": str, "item_ids": list[str], "payment_method_id": str},
            writes=True)
policy.tool("exchange_delivered_order_items", {"order_id": str, "item_ids": list[str], "new_item_ids": list[str],
                                               "payment_method_id": str}, writes=True)
policy.tool("modify_user_address", {"user_id": str, **ADDRESS}, writes=True)

LOOKUPS = ("find_user_id_by_email", "find_user_id_by_name_zip")
BEFORE_AUTHENTICATION = (*LOOKUPS, "calculate", "transfer_to_human_agents")
ORDER_WRITES = ("cancel_pending_order", "modify_pending_order_address", "modify_pending_order_payment",
                "modify_pending_order_items", "return_delivered_order_items", "exchange_delivered_order_items")
ITEM_CHANGES = ("modify_pending_order_items", "exchange_delivered_order_items")
PAYING = ("modify_pending_order_payment", "modify_pending_order_items", "return_delivered_order_items",
          "exchange_delivered_order_items")
SESSION = "_session"  # what the policy keeps about the conversation in its layer of the state (who authenticated)

policy.judgement(
    "Do not make up information, procedures or recommendations not provided by the user or the tools.",
    "Deny user requests that are against this policy (the refusals here cover the actions, not the replies).",
    "Transfer to a human agent if and only if the request cannot be handled within the scope of the actions.",
    "After transferring, send 'YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON.' (a message, not a call).",
    "The proposal before a write lists the action's details (checked only in that a proposal naming another order "
    "does not confirm this one).",
    "Remind the customer to confirm they have listed all the items to modify or exchange.",
    "Make at most one tool call at a time and do not reply to the user in the same turn (not visible in a "
    "conversation file; the proxy's parallel_tool_calls=false asks the model for it).",
    "Check the order's status before acting (the policy checks the status itself, from the state).",
)


# -- facts ---------------------------------------------------------------------------------------------------------
def find_user(state: Any, call: ToolCall) -> str | None:
    """The user a lookup call finds, as tau2's tools find them (email without case; names without case, zip
    exactly)."""
    args = call.arguments
    users = state["users"]
    if call.name == "find_user_id_by_email":
        email = str(args.get("email", "")).lower()
        return next((uid for uid, u in users.items() if str(u["email"]).lower() == email), None)
    first, last, zip_code = (str(args.get(k, "")) for k in ("first_name", "last_name", "zip"))
    for uid, u in users.items():
        name = u["name"]
        if (str(name["first_name"]).lower() == first.lower() and str(name["last_name"]).lower() == last.lower()
                and u["address"]["zip"] == zip_code):
            return uid
    return None


def authenticated_user(ctx: RuleContext) -> str | None:
    """Who this conversation authenticated (recorded by the lookup's effect when it found someone)."""
    session = ctx.state.get(SESSION)
    return None if session is None else session.get("user_id")


def order(state: Any, order_id: Any) -> Any:
    return state["orders"].get(order_id) if isinstance(order_id, str) else None


def order_owner(state: Any, order_id: Any) -> str | None:
    found = order(state, order_id)
    return None if found is None else found["user_id"]


def payment_method(ctx: RuleContext) -> Any:
    """The payment method the call names, among the order owner's (None when it is not theirs)."""
    owner = order_owner(ctx.state, ctx.arguments.get("order_id"))
    user = ctx.state["users"].get(owner) if owner else None
    return None if user is None else user["payment_methods"].get(ctx.arguments["payment_method_id"])


def gift_card_balance(ctx: RuleContext) -> Any:
    method = payment_method(ctx)
    return method.get("balance") if method is not None and method["source"] == "gift_card" else None


def price_difference(ctx: RuleContext) -> float:
    """What the new items cost more than the old ones (negative: a refund)."""
    found = order(ctx.state, ctx.arguments["order_id"])
    old = {item["item_id"]: item for item in found["items"]}
    return sum(variant(ctx.state, old[item]["product_id"], new)["price"] - old[item]["price"] for item, new in
               zip(ctx.arguments["item_ids"], ctx.arguments["new_item_ids"], strict=True))


def variant(state: Any, product_id: str, item_id: str) -> Any:
    """The variant ``item_id`` of the product ``product_id`` (None when the product has no such item)."""
    product = state["products"].get(product_id)
    return None if product is None else product["variants"].get(item_id)


def product_of(state: Any, item_id: str) -> Any:
    """The product that has the item ``item_id`` (None when no product has it)."""
    return next((p for p in state["products"].values() if item_id in p["variants"]), None)


def _options(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in options.items())


# -- the conversation: transfer, authentication, one user ----------------------------------------------------------
@policy.rule
def nothing_after_transfer(ctx: RuleContext) -> Outcome:
    """Once the user is transferred to a human agent, the conversation is theirs."""
    if ctx.calls("transfer_to_human_agents"):
        return Refuse("the user has been transferred to a human agent: no more tool calls in this conversation")
    return None


@policy.rule
def authenticate_first(ctx: RuleContext) -> Outcome:
    """Authenticate the user (find their user id by email, or by name and zip code) before anything else, even
    when the user gives their user id."""
    if ctx.name in BEFORE_AUTHENTICATION or authenticated_user(ctx) is not None:
        return None
    return Refuse(f"the user is not authenticated yet: before {ctx.name}, find their user id with "
                  f"find_user_id_by_email, or find_user_id_by_name_zip (first name, last name and zip code), even "
                  f"if they gave their user id")


@policy.rule(on=LOOKUPS)
def one_user_per_conversation(ctx: RuleContext) -> Outcome:
    """Help one user per conversation: no lookup may authenticate a second one."""
    current = authenticated_user(ctx)
    found = find_user(ctx.state, ctx.call)
    if current is not None and found is not None and found != current:
        return Refuse(f"this conversation has authenticated the user {current}; you can only help one user per "
                      f"conversation and must deny requests about any other user")
    return None


policy.add(belongs_to_user("user_id", owner=lambda state, uid: uid, user=authenticated_user, what="user account"),
           on=("get_user_details", "modify_user_address"), name="own_user_only")
policy.add(belongs_to_user("order_id", owner=order_owner, user=authenticated_user, what="order"),
           on=("get_order_details", *ORDER_WRITES), name="own_orders_only")


# -- status of the order -------------------------------------------------------------------------------------------
PENDING_HINTS = {"pending (item modified)": "its items were modified, so it can no longer be cancelled or modified",
                 "processed": "a processed order can no longer be cancelled or modified",
                 "delivered": "a delivered order can be returned or exchanged instead",
                 "cancelled": "it was cancelled"}
DELIVERED_HINTS = {"pending": "a pending order can be cancelled or modified instead",
                   "pending (item modified)": "it has not been delivered yet",
                   "processed": "it has not been delivered yet",
                   "return requested": "a return was already requested: return or exchange can be done only once",
                   "exchange requested": "an exchange was already requested: return or exchange can be done only once",
                   "cancelled": "it was cancelled"}
for tool in ("cancel_pending_order", "modify_pending_order_address", "modify_pending_order_payment",
             "modify_pending_order_items"):
    policy.add(status_is("order_id", "pending", lookup=order, what="order", hints=PENDING_HINTS), on=tool,
               name=f"{tool}_needs_pending")
for tool in ("return_delivered_order_items", "exchange_delivered_order_items"):
    policy.add(status_is("order_id", "delivered", lookup=order, what="order", hints=DELIVERED_HINTS), on=tool,
               name=f"{tool}_needs_delivered")

policy.add(one_of("reason", ("no longer needed", "ordered by mistake"), what="the cancellation reason"),
           on="cancel_pending_order", name="cancel_reason")


# -- items ---------------------------------------------------------------------------------------------------------
@policy.rule(on=(*ITEM_CHANGES, "return_delivered_order_items"))
def items_in_order(ctx: RuleContext) -> Outcome:
    """The items to change are in the order, each as many times as it is listed."""
    items = ctx.arguments["item_ids"]
    if not items:
        return Refuse(f"{ctx.name} needs at least one item id")
    found = order(ctx.state, ctx.arguments["order_id"])
    held = Counter(item["item_id"] for item in found["items"])
    for item_id, wanted in Counter(items).items():
        if wanted > held[item_id]:
            have = ", ".join(f"{i['item_id']} ({i['name']})" for i in found["items"])
            times = "is not" if held[item_id] == 0 else f"is there {held[item_id]} time(s), not {wanted}"
            return Refuse(f"item {item_id} {times} in order {found['order_id']}; its items are: {have}")
    return None


@policy.rule(on=ITEM_CHANGES)
def new_items_match(ctx: RuleContext) -> Outcome:
    """Each item changes to an available item of the same product with a different option, one for one."""
    items, new_items = ctx.arguments["item_ids"], ctx.arguments["new_item_ids"]
    if len(items) != len(new_items):
        return Refuse(f"{len(items)} item(s) to change but {len(new_items)} new item(s): give one new item id for "
                      f"each item id, in the same order")
    found = order(ctx.state, ctx.arguments["order_id"])
    by_id = {item["item_id"]: item for item in found["items"]}
    for old_id, new_id in zip(items, new_items, strict=True):
        old = by_id[old_id]
        new = variant(ctx.state, old["product_id"], new_id)
        if new is None:
            other = product_of(ctx.state, new_id)
            if other is None:
                return Refuse(f"there is no item {new_id}; look the product up with get_product_details "
                              f"({old['product_id']})")
            return Refuse(f"item {old_id} is a {old['name']} but {new_id} is a {other['name']}: an item can only "
                          f"change to another option of the same product")
        if new_id == old_id:
            return Refuse(f"the new item {new_id} is the item itself: choose a different option")
        if not new["available"]:
            return Refuse(f"the new item {new_id} ({old['name']}: {_options(new['options'])}) is not available")
    return None


# -- payment -------------------------------------------------------------------------------------------------------
@policy.rule(on=PAYING)
def payment_method_is_users(ctx: RuleContext) -> Outcome:
    """The payment method is one of the authenticated user's own."""
    if payment_method(ctx) is not None:
        return None
    owner = order_owner(ctx.state, ctx.arguments["order_id"])
    theirs = ", ".join(ctx.state["users"][owner]["payment_methods"]) if owner else "none"
    return Refuse(f"payment method {ctx.arguments['payment_method_id']} is not one of the user's; their payment "
                  f"methods are: {theirs}")


@policy.rule(on="return_delivered_order_items")
def refund_to_original_or_gift_card(ctx: RuleContext) -> Outcome:
    """A return's refund goes to the original payment method or to one of the user's gift cards."""
    found = order(ctx.state, ctx.arguments["order_id"])
    original = found["payment_history"][0]["payment_method_id"]
    method = payment_method(ctx)
    if ctx.arguments["payment_method_id"] == original or method["source"] == "gift_card":
        return None
    return Refuse(f"the refund must go to the original payment method ({original}) or an existing gift card, not "
                  f"to {ctx.arguments['payment_method_id']}")


@policy.rule(on="modify_pending_order_payment")
def new_payment_method_differs(ctx: RuleContext) -> Outcome:
    """A payment change goes to a single method different from the original, and is made once."""
    found = order(ctx.state, ctx.arguments["order_id"])
    history = found["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        return Refuse(f"the payment of order {found['order_id']} has already been changed or refunded; it can "
                      f"only be changed while it has its one original payment")
    if history[0]["payment_method_id"] == ctx.arguments["payment_method_id"]:
        return Refuse(f"order {found['order_id']} is already paid with {ctx.arguments['payment_method_id']}: "
                      f"choose a different payment method")
    return None


def _order_total(ctx: RuleContext) -> Any:
    return order(ctx.state, ctx.arguments["order_id"])["payment_history"][0]["amount"]


def _gift_card_rule(difference: Any, what: str) -> Any:
    check = holds("balance >= amount", balance=gift_card_balance, amount=difference,
                  reason=f"the gift card's balance of {{balance}} does not cover {what} of {{amount}}: choose "
                         f"another payment method")

    def rule(ctx: RuleContext) -> Outcome:
        if gift_card_balance(ctx) is None:  # not a gift card: nothing to cover
            return None
        return check(ctx)

    return rule


policy.add(_gift_card_rule(_order_total, "the order total"), on="modify_pending_order_payment",
           name="gift_card_covers_order")
policy.add(_gift_card_rule(price_difference, "the price difference"), on=ITEM_CHANGES,
           name="gift_card_covers_difference")


# -- confirmation --------------------------------------------------------------------------------------------------
ORDER_ID = re.compile(r"#?W\d{7}\b")
policy.add(confirmed(ids=ORDER_ID, expected=lambda ctx: [ctx.arguments.get("order_id")],
                     normalize=lambda s: s.lstrip("#")), writes=True, name="explicit_confirmation")


# -- effects of the calls the policy allows (tau2's tools) ---------------------------------------------------------
@policy.effect("find_user_id_by_email")
@policy.effect("find_user_id_by_name_zip")
def authenticated(state: State, call: ToolCall) -> None:
    found = find_user(state.view, call)
    if found is not None and state.get(SESSION, "user_id") is None:
        state.set(SESSION, "user_id", found)


def _refund_gift_card(state: State, user_id: str, method_id: str, amount: float) -> None:
    method = state.view["users"][user_id]["payment_methods"].get(method_id)
    if method is not None and method["source"] == "gift_card":
        card = state.edit("users", user_id, "payment_methods", method_id)
        card["balance"] = round(card["balance"] + amount, 2)


@policy.effect("cancel_pending_order")
def cancelled(state: State, call: ToolCall) -> None:
    found = state.edit("orders", call.arguments["order_id"])
    refunds = [{"transaction_type": "refund", "amount": p["amount"], "payment_method_id": p["payment_method_id"]}
               for p in found["payment_history"]]
    for refund in refunds:
        _refund_gift_card(state, found["user_id"], refund["payment_method_id"], refund["amount"])
    found["status"] = "cancelled"
    found["cancel_reason"] = call.arguments["reason"]
    found["payment_history"].extend(refunds)


@policy.effect("modify_pending_order_address")
def order_address_changed(state: State, call: ToolCall) -> None:
    state.edit("orders", call.arguments["order_id"])["address"] = {k: call.arguments[k] for k in ADDRESS}


@policy.effect("modify_user_address")
def user_address_changed(state: State, call: ToolCall) -> None:
    state.edit("users", call.arguments["user_id"])["address"] = {k: call.arguments[k] for k in ADDRESS}


@policy.effect("modify_pending_order_payment")
def payment_changed(state: State, call: ToolCall) -> None:
    found = state.edit("orders", call.arguments["order_id"])
    original = found["payment_history"][0]
    amount, new = original["amount"], call.arguments["payment_method_id"]
    found["payment_history"] += [{"transaction_type": "payment", "amount": amount, "payment_method_id": new},
                                 {"transaction_type": "refund", "amount": amount,
                                  "payment_method_id": original["payment_method_id"]}]
    _refund_gift_card(state, found["user_id"], new, -amount)
    _refund_gift_card(state, found["user_id"], original["payment_method_id"], amount)


@policy.effect("modify_pending_order_items")
def items_modified(state: State, call: ToolCall) -> None:
    found = state.edit("orders", call.arguments["order_id"])
    difference = 0.0
    for old_id, new_id in zip(call.arguments["item_ids"], call.arguments["new_item_ids"], strict=True):
        item = next(i for i in found["items"] if i["item_id"] == old_id)
        new = variant(state.view, item["product_id"], new_id)
        difference += new["price"] - item["price"]
        item.update(item_id=new_id, price=new["price"], options=dict(new["options"]))
    difference = round(difference, 2)
    method = call.arguments["payment_method_id"]
    found["payment_history"].append({"transaction_type": "payment" if difference > 0 else "refund",
                                     "amount": abs(difference), "payment_method_id": method})
    found["status"] = "pending (item modified)"
    _refund_gift_card(state, found["user_id"], method, -difference)


@policy.effect("return_delivered_order_items")
def return_requested(state: State, call: ToolCall) -> None:
    found = state.edit("orders", call.arguments["order_id"])
    found.update(status="return requested", return_items=sorted(call.arguments["item_ids"]),
                 return_payment_method_id=call.arguments["payment_method_id"])


@policy.effect("exchange_delivered_order_items")
def exchange_requested(state: State, call: ToolCall) -> None:
    found = state.edit("orders", call.arguments["order_id"])
    held = {i["item_id"]: i for i in found["items"]}
    difference = sum(variant(state.view, held[o]["product_id"], n)["price"] - held[o]["price"] for o, n in
                     zip(call.arguments["item_ids"], call.arguments["new_item_ids"], strict=True))
    found.update(status="exchange requested", exchange_items=sorted(call.arguments["item_ids"]),
                 exchange_new_items=sorted(call.arguments["new_item_ids"]),
                 exchange_payment_method_id=call.arguments["payment_method_id"],
                 exchange_price_difference=round(difference, 2))


if __name__ == "__main__":
    print(policy.describe())
