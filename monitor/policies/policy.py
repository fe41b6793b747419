"""A policy: the tools it knows, the rules every call must pass, and the effects of the calls it allows.

::

    policy = Policy("store", description="What a support agent may do")
    policy.tool("get_order", {"order_id": str})
    policy.tool("cancel_order", {"order_id": str, "reason": str}, writes=True)

    @policy.rule(on="cancel_order")
    def only_pending_orders(ctx: RuleContext) -> Outcome:
        order = ctx.state["orders"].get(ctx.arguments["order_id"])
        if order is None:
            return Undecided("no such order")
        if order["status"] != "pending":
            return Refuse(f"order {order['id']} is {order['status']}: only pending orders can be cancelled")
        return None

    @policy.effect("cancel_order")
    def cancelled(state: State, call: ToolCall) -> None:
        state.edit("orders", call.arguments["order_id"])["status"] = "cancelled"

A call is allowed when every rule that applies to it allows it; rules are checked in the order they were declared
(two built-in ones first: the tool is one the policy declares, and the arguments fit its declaration), and the
first refusal decides. ``policy.judgement("...")`` lists a rule of the written policy that needs judgement, so
that the policy says what it does not check.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlock.monitor.agents.tools import ToolCall
from interlock.monitor.policies.context import RuleContext
from interlock.monitor.policies.errors import PolicyDefinitionError, PolicyLoadError
from interlock.monitor.policies.outcomes import Outcome, Refuse

if TYPE_CHECKING:
    from interlock.monitor.policies.conversation import Conversation
    from interlock.monitor.policies.outcomes import Decision
    from interlock.monitor.policies.session import PolicySession
    from interlock.monitor.policies.state import StateSource

__all__ = ["Effect", "Policy", "Rule", "RuleFunction", "ToolSpec", "load_policy"]

RuleFunction = Callable[[RuleContext], "Outcome | Awaitable[Outcome]"]
Effect = Callable[..., None]  # (state, call) or (state, call, result)

_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
               dict: "an object", type(None): "null"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return "a list" if item is Any else f"a list of {_type_name(item).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "an object"
    if tp is Any:
        return "any value"
    return _JSON_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _fits(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if origin is list:
        args = typing.get_args(tp)
        return isinstance(value, list) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is type(None) or tp is None:
        return value is None
    if isinstance(tp, type):
        return isinstance(value, tp)
    raise PolicyDefinitionError(f"unsupported argument type {tp!r}: use str, int, float, bool, list, dict, "
                                f"list[T], X | None or Any")


def _valid_type(tp: Any) -> bool:
    """Whether ``tp`` is a JSON type the arguments check knows: str, int, float, bool, list, dict, None, Any, and
    ``list[T]``, ``dict[K, V]`` and unions of them."""
    if tp is Any or tp in _JSON_NAMES or tp is None:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, list):
        return all(_valid_type(a) for a in typing.get_args(tp))
    return origin is dict


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the policy knows it: its arguments and their types, whether it changes the system."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    writes: bool = False
    optional: frozenset[str] = frozenset()
    description: str = ""

    def check(self, arguments: Mapping[str, Any]) -> Refuse | None:
        """A refusal naming the first argument that is missing, unknown or of the wrong type."""
        usage = f"{self.name}({', '.join(self.params)})"
        for key in arguments:
            if key not in self.params:
                return Refuse(f"{self.name} has no argument {key!r}; call it as {usage}")
        for key, tp in self.params.items():
            if key not in arguments:
                if key in self.optional:
                    continue
                return Refuse(f"{self.name} needs the argument {key!r} ({_type_name(tp)}); call it as {usage}")
            if not _fits(arguments[key], tp):
                return Refuse(f"the argument {key!r} of {self.name} must be {_type_name(tp)}, not "
                              f"{type(arguments[key]).__name__}")
        return None


@dataclass(frozen=True)
class Rule:
    """A rule of a policy: a function of a :class:`RuleContext`, the tools it applies to, and whether it refuses
    when it cannot decide (``fail_closed``)."""

    name: str
    function: RuleFunction
    tools: frozenset[str] | None = None  # None: every tool
    writes_only: bool = False
    fail_closed: bool = True
    doc: str = ""

    @property
    def is_async(self) -> bool:
        fn = self.function
        call = None if inspect.isroutine(fn) else next(
            (k.__dict__["__call__"] for k in type(fn).__mro__ if "__call__" in k.__dict__), None)
        return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)

    def applies_to(self, call: ToolCall, policy: Policy) -> bool:
        if self.tools is not None and call.name not in self.tools:
            return False
        if self.writes_only:
            spec = policy.tools.get(call.name)
            return spec is not None and spec.writes
        return True


def _selection(on: str | Iterable[str] | None) -> frozenset[str] | None:
    if on is None:
        return None
    names = frozenset([on] if isinstance(on, str) else on)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise PolicyDefinitionError(f"on= must be a tool name or a list of tool names, got {on!r}")
    return names


def _known_tool(ctx: RuleContext) -> Outcome:
    """The tool is one the policy declares."""
    if ctx.spec is None and ctx.policy.tools and ctx.policy.unknown_tools == "refuse":
        known = ", ".join(sorted(ctx.policy.tools))
        return Refuse(f"there is no tool named {ctx.name!r}; the tools are: {known}")
    return None


def _arguments_fit(ctx: RuleContext) -> Outcome:
    """The arguments are those the tool declares, of the declared types."""
    spec = ctx.spec
    return None if spec is None else spec.check(ctx.arguments)


class Policy:
    """A named set of rules over tool calls, with the tools they are about and the effects of allowed writes.

    - ``unknown_tools``: ``"refuse"`` (default) refuses a call of a tool the policy does not declare, once it
      declares any; ``"allow"`` leaves such calls to the rules.
    - ``check_timeout``: seconds the rules of one call may take together; past it the call is refused.
    """

    def __init__(self, name: str, *, description: str = "", unknown_tools: str = "refuse",
                 check_timeout: float = 10.0) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PolicyDefinitionError("a policy needs a name")
        if unknown_tools not in ("refuse", "allow"):
            raise PolicyDefinitionError(f"unknown_tools must be 'refuse' or 'allow', got {unknown_tools!r}")
        if not (isinstance(check_timeout, int | float) and check_timeout > 0):
            raise PolicyDefinitionError(f"check_timeout must be a positive number of seconds, got {check_timeout!r}")
        self.name = name
        self.description = description
        self.unknown_tools = unknown_tools
        self.check_timeout = float(check_timeout)
        self.tools: dict[str, ToolSpec] = {}
        self.rules: list[Rule] = [Rule("known-tool", _known_tool, doc=_known_tool.__doc__ or ""),
                                  Rule("arguments", _arguments_fit, doc=_arguments_fit.__doc__ or "")]
        self.effects: dict[str, list[Effect]] = {}
        self.judgements: list[str] = []

    def __repr__(self) -> str:
        return (f"<Policy {self.name!r}: {len(self.tools)} tools, {len(self.rules)} rules, "
                f"{sum(map(len, self.effects.values()))} effects>")

    # -- declaring -------------------------------------------------------------------------------------------
    def tool(self, name: str, params: Mapping[str, Any] | None = None, *, writes: bool = False,
             optional: Iterable[str] = (), description: str = "") -> ToolSpec:
        """Declare a tool: its arguments by name with their types (``str``, ``int``, ``float``, ``bool``,
        ``list[str]``, ``dict``, ``X | None``, ``Any``), which may be left out, and whether it changes the system."""
        if not isinstance(name, str) or not name:
            raise PolicyDefinitionError(f"a tool needs a name, got {name!r}")
        if name in self.tools:
            raise PolicyDefinitionError(f"the tool {name!r} is declared twice")
        params = dict(params or {})
        for key, tp in params.items():
            if not isinstance(key, str) or not key:
                raise PolicyDefinitionError(f"{name}: argument names must be strings, got {key!r}")
            if not _valid_type(tp):
                raise PolicyDefinitionError(f"{name}: the argument {key!r} has an unsupported type {tp!r}: use str, "
                                            f"int, float, bool, list, dict, list[T], X | None or Any")
        optional = frozenset(optional)
        if not optional <= params.keys():
            raise PolicyDefinitionError(f"{name}: optional names arguments it does not declare: "
                                        f"{sorted(optional - params.keys())}")
        spec = ToolSpec(name, params, bool(writes), optional, description)
        self.tools[name] = spec
        return spec

    def add(self, function: RuleFunction, *, on: str | Iterable[str] | None = None, writes: bool = False,
            name: str | None = None, fail_closed: bool = True) -> Rule:
        """Add a rule: ``function(ctx) -> Outcome`` (sync or async). ``on``: the tools it applies to (all by
        default); ``writes=True``: only tools declared as writes; ``fail_closed=False``: when it cannot decide,
        the call goes on (its doubt is kept in ``Decision.notes``)."""
        if not callable(function):
            raise PolicyDefinitionError(f"a rule must be callable, got {function!r}")
        rule_name = name or getattr(function, "__name__", None) or type(function).__name__
        if rule_name == "<lambda>":
            raise PolicyDefinitionError("a lambda rule needs a name: policy.add(fn, name='...')")
        if any(r.name == rule_name for r in self.rules):
            raise PolicyDefinitionError(f"two rules are named {rule_name!r}")
        doc = (inspect.getdoc(function) or "").strip().split("\n\n")[0].replace("\n", " ")
        rule = Rule(rule_name, function, _selection(on), bool(writes), bool(fail_closed), doc)
        self.rules.append(rule)
        return rule

    def rule(self, function: RuleFunction | None = None, *, on: str | Iterable[str] | None = None,
             writes: bool = False, name: str | None = None, fail_closed: bool = True) -> Any:
        """Decorator form of :meth:`add`: ``@policy.rule`` or ``@policy.rule(on="cancel_order")``."""
        if function is not None:
            self.add(function, on=on, writes=writes, name=name, fail_closed=fail_closed)
            return function

        def register(fn: RuleFunction) -> RuleFunction:
            self.add(fn, on=on, writes=writes, name=name, fail_closed=fail_closed)
            return fn

        return register

    def effect(self, tool: str) -> Callable[[Effect], Effect]:
        """Decorator: ``fn(state, call)`` or ``fn(state, call, result)`` models what an allowed, successful call
        of ``tool`` does to the state (``state.edit(...)``, ``state.set(...)``)."""
        if not isinstance(tool, str) or not tool:
            raise PolicyDefinitionError(f"@policy.effect needs a tool name, got {tool!r}")

        def register(fn: Effect) -> Effect:
            if not callable(fn):
                raise PolicyDefinitionError(f"an effect must be callable, got {fn!r}")
            try:
                positional = [p for p in inspect.signature(fn).parameters.values()
                              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            except (TypeError, ValueError):
                positional = []
            if len(positional) not in (2, 3):
                raise PolicyDefinitionError(f"the effect {getattr(fn, '__name__', fn)!r} must take (state, call) or "
                                            f"(state, call, result)")
            self.effects.setdefault(tool, []).append(fn)
            return fn

        return register

    def judgement(self, *rules: str) -> None:
        """List rules of the written policy that a check cannot decide (they need judgement), so the policy says
        what it leaves to people or to the model."""
        for text in rules:
            if not isinstance(text, str) or not text.strip():
                raise PolicyDefinitionError("policy.judgement takes the rules' texts")
            self.judgements.append(text.strip())

    # -- using -----------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Fail on a rule or effect about a tool the policy does not declare (once it declares tools)."""
        if not self.tools:
            return
        for rule in self.rules:
            unknown = sorted((rule.tools or frozenset()) - self.tools.keys())
            if unknown:
                raise PolicyDefinitionError(f"the rule {rule.name!r} is about tools the policy does not declare: "
                                            f"{', '.join(unknown)}")
        unknown = sorted(self.effects.keys() - self.tools.keys())
        if unknown:
            raise PolicyDefinitionError(f"effects of tools the policy does not declare: {', '.join(unknown)}")

    def rules_for(self, call: ToolCall) -> list[Rule]:
        return [r for r in self.rules if r.applies_to(call, self)]

    def session(self, state: StateSource | Mapping[str, Any] | None = None, *,
                check_timeout: float | None = None) -> PolicySession:
        """A session: one conversation checked against ``state`` (a :class:`State`, whose effects stay in the
        session's own layer, a :class:`LiveState`, or a plain dict)."""
        from interlock.monitor.policies.session import PolicySession

        return PolicySession(self, state, check_timeout=check_timeout)

    async def check_conversation(self, conversation: Conversation | Iterable[Any],
                                 state: StateSource | Mapping[str, Any] | None = None) -> list[Decision]:
        """Check every call of a conversation in order, as if each allowed call ran: one decision per call."""
        return await self.session(state).run(conversation)

    def describe(self) -> str:
        """The policy in words: its tools, its rules in order, what it models, and what it leaves to judgement."""
        lines = [f"policy {self.name}" + (f": {self.description}" if self.description else "")]
        if self.tools:
            lines.append("tools:")
            for spec in self.tools.values():
                params = ", ".join(f"{k}: {_type_name(t)}" for k, t in spec.params.items())
                lines.append(f"  {spec.name}({params}){' [write]' if spec.writes else ''}")
        lines.append("rules (checked in this order; the first refusal decides):")
        for rule in self.rules:
            scope = "every tool" if rule.tools is None and not rule.writes_only else \
                "write tools" if rule.tools is None else ", ".join(sorted(rule.tools))
            lines.append(f"  {rule.name} [{scope}]{': ' + rule.doc if rule.doc else ''}")
        if self.effects:
            lines.append("effects modelled: " + ", ".join(sorted(self.effects)))
        if self.judgements:
            lines.append("left to judgement (not checked):")
            lines.extend(f"  - {text}" for text in self.judgements)
        return "\n".join(lines)


def load_policy(spec: str | Path) -> Policy:
    """The policy in ``path/to/file.py``, ``file.py:name``, ``package.module`` or ``package.module:name``.

    Without ``:name`` the module's ``policy`` is used, else its only :class:`Policy`."""
    text = str(spec)
    target, _, attr = text.partition(":") if not (len(text) > 1 and text[1] == ":") else (text, "", "")
    if text.endswith(".py") or Path(target).suffix == ".py":
        path = Path(target)
        if not path.is_file():
            raise PolicyLoadError(f"no policy file at {path}")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        module_name = f"interlock_policy_{path.stem}_{digest}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        if loader is None or loader.loader is None:
            raise PolicyLoadError(f"cannot import {path}")
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        try:
            loader.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(module_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PolicyLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise PolicyLoadError(f"cannot import {target}: {type(exc).__name__}: {exc}") from None
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Policy):
            raise PolicyLoadError(f"{target} has no Policy named {attr!r}")
        policy = found
    elif isinstance(getattr(module, "policy", None), Policy):
        policy = module.policy
    else:
        policies: Sequence[Policy] = [v for v in vars(module).values() if isinstance(v, Policy)]
        if len(policies) != 1:
            which = "no Policy" if not policies else f"{len(policies)} policies"
            raise PolicyLoadError(f"{target} holds {which}: name one as {target}:NAME, or call it `policy`")
        policy = policies[0]
    try:
        policy.validate()
    except PolicyDefinitionError as exc:
        raise PolicyLoadError(f"{target}: {exc}") from None
    return policy
