"""Rules of the shapes written policies keep using, ready to add to a policy::

    policy.add(only_after("find_user_id_by_email", "find_user_id_by_name_zip"), name="authenticate_first")
    policy.add(one_of("reason", {"no longer needed", "ordered by mistake"}), on="cancel_pending_order")
    policy.add(status_is("order_id", "pending", lookup=order, what="order"), on="cancel_pending_order")
    policy.add(belongs_to_user("order_id", owner=order_owner, user=authenticated_user), on=ORDER_TOOLS)
    policy.add(confirmed(), writes=True)                # an explicit yes since the last proposal

Each returns a plain rule function (``ctx -> Outcome``); each refusal says what is wrong in words an agent can act
on. Numeric and date constraints: :func:`interlock.monitor.policies.constraints.holds` (z3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from interlock.monitor.policies.context import RuleContext
from interlock.monitor.policies.conversation import CallRecord, Message
from interlock.monitor.policies.outcomes import Outcome, Refuse, Undecided

__all__ = ["NEGATIONS", "YES", "belongs_to_user", "confirmed", "explicit_yes", "one_of", "only_after", "status_is"]

RuleFunction = Callable[[RuleContext], Outcome]


def _named(fn: RuleFunction, name: str, doc: str) -> RuleFunction:
    fn.__name__ = fn.__qualname__ = re.sub(r"\W+", "_", name).strip("_")
    fn.__doc__ = doc
    return fn


def only_after(*tools: str, same: Iterable[str] = (), reason: str | None = None) -> RuleFunction:
    """Call X only after Y: an earlier call of one of ``tools`` that the policy allowed and that did not fail,
    with the same values of the arguments named in ``same``."""
    if not tools:
        raise TypeError("only_after needs at least one tool name")
    keys = tuple(same)
    wanted = " or ".join(tools)

    def rule(ctx: RuleContext) -> Outcome:
        for record in ctx.calls(*tools):
            if record.error is None and all(record.arguments.get(k) == ctx.arguments.get(k) for k in keys):
                return None
        if reason is not None:
            return Refuse(reason)
        about = " with the same " + ", ".join(keys) if keys else ""
        return Refuse(f"{ctx.name} can only be called after {wanted}{about}; call {wanted} first")

    return _named(rule, f"only_after_{'_or_'.join(tools)}", f"only after a call of {wanted}.")


def one_of(argument: str, values: Collection[Any], *, what: str | None = None) -> RuleFunction:
    """The argument must be one of ``values`` (compared exactly)."""
    allowed = list(values)
    shown = ", ".join(repr(v) for v in allowed)

    def rule(ctx: RuleContext) -> Outcome:
        value = ctx.argument(argument)
        if value in allowed:
            return None
        return Refuse(f"{what or argument} {value!r} is not accepted: it must be one of {shown}")

    return _named(rule, f"{argument}_is_one_of", f"{argument} must be one of {shown}.")


def status_is(argument: str, *statuses: str, lookup: Callable[[Any, Any], Any], field: str = "status",
              what: str = "record", hints: Mapping[str, str] | None = None) -> RuleFunction:
    """Status must be S: the record that ``lookup(state, value)`` finds for the argument has ``field`` in
    ``statuses``. ``hints``: what to suggest for a status that is not allowed ("a delivered order can be
    returned or exchanged instead"). A record that does not exist is refused."""
    if not statuses:
        raise TypeError("status_is needs at least one status")
    shown = " or ".join(repr(s) for s in statuses)

    def rule(ctx: RuleContext) -> Outcome:
        value = ctx.argument(argument)
        record = lookup(ctx.state, value)
        if record is None:
            return Refuse(f"there is no {what} {value!r}; check the {argument}")
        status = record.get(field) if isinstance(record, Mapping) else None
        if status is None:
            return Undecided(f"the {what} {value!r} has no {field}")
        if status in statuses:
            return None
        hint = (hints or {}).get(status, "")
        article = "an" if what[:1].lower() in "aeiou" else "a"
        return Refuse(f"{what} {value} is {status!r}: {ctx.name} needs {article} {what} whose {field} is {shown}"
                      + (f"; {hint}" if hint else ""))

    return _named(rule, f"{what}_{field}_is_{'_or_'.join(statuses)}", f"the {what}'s {field} must be {shown}.")


def belongs_to_user(argument: str, *, owner: Callable[[Any, Any], Any], user: Callable[[RuleContext], Any],
                    what: str = "record", missing: Outcome = None) -> RuleFunction:
    """The argument must belong to the authenticated user: ``owner(state, value)`` (the owner of the record the
    argument names) must be ``user(ctx)`` (who is authenticated in this conversation). A record that does not
    exist gets ``missing`` (allowed by default: rules about existence say why it cannot be used)."""

    def rule(ctx: RuleContext) -> Outcome:
        value = ctx.argument(argument)
        who = user(ctx)
        if who is None:
            return Refuse(f"no user is authenticated yet: authenticate the user before using a {what}")
        found = owner(ctx.state, value)
        if found is None:
            return missing
        if found != who:
            return Refuse(f"{what} {value} does not belong to the authenticated user {who}: only the authenticated "
                          f"user's own {what}s can be used in this conversation")
        return None

    return _named(rule, f"{what}_belongs_to_user", f"the {what} named by {argument} must be the authenticated "
                                                   f"user's.")


# -- explicit confirmation ------------------------------------------------------------------------------------------

YES = ("yes", "yeah", "yep", "yup", "y", "sure", "ok", "okay", "alright", "all right", "confirm", "confirmed",
       "i confirm", "go ahead", "go for it", "proceed", "please proceed", "please go ahead", "correct",
       "that's correct", "that is correct", "that's right", "right", "absolutely", "please do", "do it",
       "affirmative", "of course", "definitely")
NEGATIONS = ("no", "not", "don't", "dont", "do not", "never", "wait", "hold on", "stop", "but", "however",
             "actually", "instead", "rather", "unless", "except", "cancel that", "nope", "nah")
_HARMLESS = re.compile(r"\b(no problem|not a problem|no worries|why not)\b")
_WORDS = re.compile(r"[a-z']+(?: [a-z']+)*")


def explicit_yes(text: str) -> bool:
    """Whether a user's message is an explicit yes: it starts with an affirmative (``yes``, ``go ahead``,
    ``confirm`` ...), asks nothing, and takes nothing back ("yes, but ...", "yes? wait", "not yet")."""
    lowered = " ".join(text.lower().replace("’", "'").split())
    if not lowered or "?" in lowered:
        return False
    words = re.sub(r"[^a-z' ]+", " ", _HARMLESS.sub(" ", lowered))
    words = " ".join(words.split())
    if not any(words == y or words.startswith(y + " ") for y in YES):
        return False
    return not any(re.search(rf"(?<![a-z']){re.escape(n)}(?![a-z'])", words) for n in NEGATIONS)


def confirmed(*, is_yes: Callable[[str], bool] = explicit_yes, ids: str | re.Pattern[str] | None = None,
              expected: Callable[[RuleContext], Iterable[str]] | None = None,
              normalize: Callable[[str], str] = lambda s: s, needs_proposal: bool = False) -> RuleFunction:
    """Needs an explicit yes since the last proposal: the user's last message before the call is an explicit yes
    (``is_yes``), no write has used that yes yet, and the assistant has asked nothing new since.

    The proposal is the assistant's last message before the yes, after the last write. ``needs_proposal=True``
    refuses a yes that answers none (a conversation file may leave the assistant's words out). With ``ids`` (a
    pattern of the identifiers proposals mention, e.g. ``r"#W\\d{7}"``) and ``expected`` (the identifiers the call
    is about), a proposal that names identifiers, but none of the call's, does not confirm it: the user said yes to
    something else."""
    pattern = re.compile(ids) if isinstance(ids, str) else ids

    def rule(ctx: RuleContext) -> Outcome:
        history = ctx.history
        u = next((i for i in range(len(history) - 1, -1, -1) if _said(history[i], "user")), None)
        if u is None:
            return Refuse(f"{ctx.name} changes the system: first list the action's details to the user and get an "
                          f"explicit yes")
        answer = history[u]
        assert isinstance(answer, Message)
        if not is_yes(answer.content):
            return Refuse(f"{ctx.name} changes the system and needs the user's explicit yes to the proposed action; "
                          f"the user's last message ({_quote(answer.content)}) is not an explicit yes",
                          feedback=f"List the details of this {ctx.name} to the user and ask them to answer yes or "
                                   f"no; call it only after a plain yes.")
        for later in history[u + 1:]:
            if isinstance(later, CallRecord) and ctx.is_write(later):
                return Refuse(f"the user's yes was for the earlier {later.name}; list the details of this "
                              f"{ctx.name} and ask again")
            if isinstance(later, Message) and later.role == "assistant" and "?" in later.content:
                return Refuse("the assistant asked the user something after the user's yes; wait for the answer "
                              "before changing the system")
        p = next((i for i in range(u - 1, -1, -1) if _said(history[i], "assistant")), None)
        earlier_write = next((i for i in range(u - 1, -1, -1) if _is_write(ctx, history[i])), -1)
        if p is None or p < earlier_write:
            if not needs_proposal:
                return None
            return Refuse(f"the user's yes answers no proposal: list the details of this {ctx.name} to the user, "
                          f"then get an explicit yes")
        proposal = history[p]
        if pattern is not None and expected is not None:
            assert isinstance(proposal, Message)
            named = {normalize(m) for m in pattern.findall(proposal.content)}
            wanted = {normalize(str(e)) for e in expected(ctx) if e is not None}
            if named and wanted and not named & wanted:
                return Refuse(f"the user confirmed an action on {', '.join(sorted(named))}, not on "
                              f"{', '.join(sorted(wanted))}: propose this {ctx.name} and ask again")
        return None

    return _named(rule, "explicit_confirmation", "a write needs an explicit yes from the user since the last "
                                                 "proposal.")


def _said(event: Any, role: str) -> bool:
    return isinstance(event, Message) and event.role == role


def _is_write(ctx: RuleContext, event: Any) -> bool:
    return isinstance(event, CallRecord) and ctx.is_write(event)


def _quote(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")
