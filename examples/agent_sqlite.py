"""An agent with a bank in SQLite: two read-only tools and one that writes, every write guarded.

The agent's reasoning is monitored turn by turn (a verifier checks the sums it writes; a wrong one is rolled
back before the tool call it leads to is even generated), and ``transfer`` goes through ``guard_tool``: it runs
only after the barrier (every check of the reasoning so far passed) and after its own argument check (the
accounts exist, the amount is positive and covered by the balance). A refused write never reaches the
database; the model gets the refusal as the tool's result and can correct itself.

Run it:

    python examples/agent_sqlite.py --scripted                 # a scripted model: shows a rollback and a refusal
    python examples/agent_sqlite.py                            # the embedded SmolLM2-135M-Instruct (~25 s to load)
    python examples/agent_sqlite.py --base-url http://127.0.0.1:8000/v1 --model NAME   # any OpenAI-compatible server
    python examples/agent_sqlite.py --task "Alice owes Bob 12 + 9 dollars. Pay him." --db bank.sqlite
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from interlock import (
    Agent,
    Capabilities,
    Chunk,
    Fail,
    GenerationRequest,
    GuardedTool,
    RegistryError,
    Step,
    TokenBudget,
    Verifier,
    create_verifier,
    guard_tool,
    verifier,
)
from interlock.generators import Scripted

OPENING = {"alice": 50, "bob": 10, "carol": 0}
TASK = "Alice owes Bob 30 + 15 dollars for the concert tickets. Check her balance, then pay Bob from her account."


class Bank:
    """Accounts and a transfer log in one SQLite database; ``transfer`` is the only write."""

    def __init__(self, path: str | Path = ":memory:", opening: Mapping[str, int] = OPENING) -> None:
        # guard_tool runs sync argument checks in a worker thread (so a slow check cannot block the event loop):
        # the connection is used from there too, one call at a time
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL);"
            "CREATE TABLE IF NOT EXISTS transfers (id INTEGER PRIMARY KEY, source TEXT, target TEXT, amount INTEGER);")
        self.db.executemany("INSERT OR IGNORE INTO accounts VALUES (?, ?)", opening.items())
        self.db.commit()

    def list_accounts(self) -> list[str]:
        """The names of all accounts."""
        return [row[0] for row in self.db.execute("SELECT name FROM accounts ORDER BY name")]

    def get_balance(self, account: str) -> int:
        """The balance of one account, in dollars."""
        row = self.db.execute("SELECT balance FROM accounts WHERE name = ?", (account,)).fetchone()
        if row is None:
            raise KeyError(f"no account named {account!r}")
        return int(row[0])

    def transfer(self, source: str, target: str, amount: int) -> dict[str, Any]:
        """Move money from one account to another."""
        with self.db:
            self.db.execute("UPDATE accounts SET balance = balance - ? WHERE name = ?", (amount, source))
            self.db.execute("UPDATE accounts SET balance = balance + ? WHERE name = ?", (amount, target))
            self.db.execute("INSERT INTO transfers (source, target, amount) VALUES (?, ?, ?)",
                            (source, target, amount))
        return {"ok": True, "source": source, "target": target, "amount": amount,
                "new_balance": self.get_balance(source)}

    def transfers(self) -> list[tuple[str, str, int]]:
        return [(s, t, a) for s, t, a in self.db.execute("SELECT source, target, amount FROM transfers ORDER BY id")]

    def check_transfer(self, args: Mapping[str, Any]) -> Fail | None:
        """The argument check of ``transfer``: known accounts, a positive whole amount the source can cover."""
        accounts = set(self.list_accounts())
        for key in ("source", "target"):
            if args[key] not in accounts:
                return Fail(f"unknown account {args[key]!r}",
                            feedback=f"There is no account {args[key]!r}; the accounts are {sorted(accounts)}.")
        amount = args["amount"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return Fail(f"invalid amount {amount!r}", feedback="The amount must be a positive whole number.")
        balance = self.get_balance(args["source"])
        if amount > balance:
            return Fail(f"{args['source']} has {balance}, less than {amount}",
                        feedback=f"{args['source']} has only {balance} dollars; you cannot send {amount}.")
        return None


def make_tools(bank: Bank) -> list[GuardedTool]:
    """Two read-only tools (no barrier) and the guarded write."""
    return [
        guard_tool(bank.list_accounts, read_only=True),
        guard_tool(bank.get_balance, read_only=True),
        guard_tool(bank.transfer, verifiers=[bank.check_transfer]),
    ]


SUM = re.compile(r"(\d+)\s*([+-])\s*(\d+)\s*=\s*(\d+)")


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    """Checks every "a + b = c" and "a - b = c" a step writes (a stand-in when `arithmetic` is not installed)."""
    for m in SUM.finditer(step.text):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        value = a + b if op == "+" else a - b
        if value != c:
            return Fail(f"{a} {op} {b} is {value}, not {c}", span=step.to_trace(*m.span()),
                        feedback=f"{a} {op} {b} is {value}, not {c}.", claim=m[0])
    return None


def reasoning_verifiers() -> list[Verifier]:
    """The registered `arithmetic` verifier (sympy) when installed, else the small `sums` check above."""
    try:
        return [create_verifier("arithmetic")]
    except RegistryError:
        return [sums]


class ScriptedTurns:
    """A stand-in model that plays one script per agent turn, chosen by the last of its markers in the prompt
    (``""`` is the first turn). Each script is a ``generators.Scripted`` script, so rollbacks work."""

    capabilities = Capabilities(resumable=True)

    def __init__(self, turns: Mapping[str, Any]) -> None:
        self.turns = {marker: Scripted(script) for marker, script in turns.items()}

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        marker = max(self.turns, key=lambda m: request.prompt.rfind(m) if m else -1)
        async for chunk in self.turns[marker].stream(request):
            yield chunk


def call(name: str, **arguments: Any) -> str:
    import json

    return f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'


# The demo model: a wrong sum first (rolled back by the monitor), then a transfer Alice cannot cover (refused by
# the argument check), then the right one.
DEMO_TURNS = {
    "": "I will check Alice's balance first.\n" + call("get_balance", account="alice"),
    "Tool (get_balance): 50": {
        "": "Alice has 50 dollars. She owes Bob 30 + 15 = 55 dollars.\n" + call("transfer", source="alice",
                                                                                 target="bob", amount=55),
        "Let me redo this step.\n": "She owes Bob 30 + 15 = 45 dollars, but I will round up.\n"
                                    + call("transfer", source="alice", target="bob", amount=60),
    },
    '"refused": true': "The transfer was refused: Alice has only 50. I will send exactly 45.\n"
                       + call("transfer", source="alice", target="bob", amount=45),
    '"ok": true': "Done: Alice paid Bob 45 dollars and has 5 dollars left.",
}


def build_generator(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model and the prompt format for it."""
    from interlock.monitor.agents.agent import transcript

    if args.scripted:
        return ScriptedTurns(DEMO_TURNS), transcript
    if args.base_url:
        from interlock.generators import OpenAICompatible

        return OpenAICompatible(args.base_url, args.model or "default", endpoint="chat", temperature=0.0), transcript
    from interlock.generators import Transformers

    print("loading SmolLM2-135M-Instruct ...", flush=True)
    model = Transformers.default(prompt_format="raw", temperature=0.0)

    def chat_template(messages: Sequence[dict[str, Any]]) -> str:
        return str(model.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))

    return model, chat_template


async def main(args: argparse.Namespace) -> None:
    bank = Bank(args.db)
    generator, prompt_format = build_generator(args)
    agent = Agent(generator, make_tools(bank), verifiers=reasoning_verifiers(),
                  governors=[TokenBudget(max_total=args.max_tokens)], prompt_format=prompt_format,
                  system="You are a careful bank assistant. Think step by step and show your sums.",
                  max_turns=args.max_turns)
    result = await agent.run(args.task)
    for n, turn in enumerate(result.turns, 1):
        print(f"--- turn {n} ({turn.result.stop_reason.value}) ---")
        print(turn.text.strip())
        for i in turn.result.interventions:
            print(f"  [monitor {i.action.value}] {i.message}")
        for outcome in turn.outcomes:
            status = "REFUSED" if outcome.refusal else ("error" if outcome.error else "ran")
            print(f"  [tool {status}] {outcome.content}")
    print(f"--- stop: {result.stop}; refused writes: {len(result.refusals)}")
    print(f"transfers in the database: {bank.transfers()}")
    print(f"balances: { {a: bank.get_balance(a) for a in bank.list_accounts()} }")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scripted", action="store_true", help="use the scripted demo model (no model needed)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server instead of the embedded model")
    parser.add_argument("--model", help="the model name to ask the server for")
    parser.add_argument("--task", default=TASK, help="what to ask the agent")
    parser.add_argument("--db", default=":memory:", help="SQLite database file (default: in memory)")
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=160, help="token budget of each model turn")
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse_args())
