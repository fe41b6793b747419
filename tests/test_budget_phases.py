"""``interlock budget`` with thinking and answer apart: tokens per phase, and ``think:N`` policies that cap the
thinking alone, scored as docs/budgets.md defines (the answer after a cut thinking was never written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interlock import Monitor
from interlock.generators import Scripted
from interlock.monitor.budgets import TraceRecord, evaluate, evaluate_record, parse_policies, read_records
from interlock.monitor.budgets.offline import replay_governors
from interlock.monitor.budgets.phased import ThinkingCap, phase_tokens, with_phases
from interlock.monitor.budgets.records import tokenize_records
from interlock.monitor.budgets.report import format_table
from interlock.monitor.budgets.tokens import WhitespaceTokenizer
from interlock.monitor.cli.main import main as cli
from interlock.monitor.governors import DEFAULT_BUDGET_MESSAGE, ThinkingBudget
from interlock.monitor.phases import ThinkingTags
from interlock.monitor.scan import pseudo_tokens

WS = WhitespaceTokenizer()
# 10 thinking words, tags included (it first says 8, then boxes 9, the right answer), then a 4-word answer
THINK = "<think> First guess: the answer is 8. Check: \\boxed{9} </think>"
ANSWER = " So it is \\boxed{9}."


def record(ident: str, text: str, reference: str = "9") -> TraceRecord:
    return TraceRecord(id=ident, question="q", text=text, reference=reference)


def tokenised(*recs: TraceRecord) -> list[TraceRecord]:
    return tokenize_records(with_phases(recs), WS)


def test_records_are_tokenised_a_phase_run_at_a_time_and_counted_per_phase() -> None:
    (rec,) = tokenised(record("a", THINK + ANSWER))
    assert rec.phases == ((0, "thinking"), (len(THINK), "answer"))
    assert len(THINK.split()) == 10 and rec.starts is not None and len(THINK) in rec.starts  # a token starts there
    assert phase_tokens(rec) == (10, 4) and phase_tokens(rec, 5) == (5, 0) and phase_tokens(rec, 12) == (10, 2)
    plain = tokenised(record("b", "no thinking here"))[0]
    assert plain.phases == () and phase_tokens(plain) == (0, 3)
    custom = tokenize_records(with_phases([record("c", "[[a b]] c")], [ThinkingTags("[[", "]]")]), WS)[0]
    assert custom.phases == ((0, "thinking"), (7, "answer")) and phase_tokens(custom) == (2, 1)
    assert TraceRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec  # phases cross process boundaries


def test_a_thinking_cap_stops_at_exactly_its_tokens_and_spares_a_shorter_thinking() -> None:
    (rec,) = tokenised(record("a", THINK + ANSWER))
    for n, chunk_tokens in ((5, 16), (7, 3), (10, 16), (40, 16)):
        stop = replay_governors([ThinkingCap(n)], "q", rec.text, starts=rec.starts, chunk_tokens=chunk_tokens,
                                phases=rec.phases)
        if n < 10:
            assert (stop.reason, stop.by, stop.forced, stop.tokens) == ("budget", "thinking_budget", True, n)
            assert stop.chars == rec.starts[n]  # type: ignore[index]
        else:  # the thinking ended within the budget: the whole recording, answer included
            assert (stop.reason, stop.tokens, stop.chars) == ("complete", 14, len(rec.text))


async def test_the_offline_cut_keeps_the_thinking_a_live_thinking_budget_keeps() -> None:
    text = THINK + ANSWER
    gen = Scripted({"": text, "</think>": ANSWER}, thinking_tags="<think>")
    live = await Monitor(gen, governors=[ThinkingBudget(6)]).run("q")
    kept = live.text[:live.text.index(DEFAULT_BUDGET_MESSAGE)]

    class Pieces:  # the scripted generator's own tokens: word pieces, whitespace before each
        name = "pieces"

        def starts(self, t: str) -> list[int]:
            out, at = [], 0
            for p in pseudo_tokens(t):
                out.append(at)
                at += len(p)
            return out

    (rec,) = tokenize_records(with_phases([record("a", text)]), Pieces())
    stop = replay_governors([ThinkingCap(6)], "q", rec.text, starts=rec.starts, chunk_tokens=16, phases=rec.phases)
    assert (live.tokens.thinking, stop.tokens) == (6, 6) and rec.text[:stop.chars] == kept


def test_a_cut_thinking_is_scored_on_what_it_states_or_as_lost_and_its_answer_tokens_estimated() -> None:
    recs = tokenised(record("a", THINK + ANSWER), record("short", "<think> 9 </think> It is \\boxed{9}."),
                     record("plain", "It is \\boxed{9}."))
    policies = parse_policies(["think:5,7,9,10", "think:9:lost", "think:10:lost"])
    out = {r.id: evaluate_record(r, policies, tokenizer=WS)["policies"] for r in recs}
    five, seven, nine, ten = (out["a"][f"think:{n}"] for n in (5, 7, 9, 10))
    # 5 thinking words: "the answer is 8." is not stated yet (the sentence is cut): no answer, scored wrong
    assert (five["thinking_cut"], five["answer"], five["correct"]) == (True, None, False)
    assert (five["thinking_tokens"], five["answer_tokens"], five["tokens"]) == (5, 4, 9)  # 4: the recorded answer
    assert five["answer_estimated"] is True
    assert (seven["answer"], seven["correct"]) == ("8", False)  # "the answer is 8.": the first guess, wrong
    assert (nine["answer"], nine["correct"], nine["tokens"]) == ("9", True, 13)  # the \boxed{9} it kept
    assert (out["a"]["think:9:lost"]["answer"], out["a"]["think:9:lost"]["correct"]) == (None, False)
    assert ten["reason"] == "complete" and ten["correct"] is True and "thinking_cut" not in ten  # 10 is enough
    assert out["a"]["think:10:lost"]["correct"] is True  # not cut: lost only scores a cut thinking
    assert out["short"]["think:5"]["reason"] == "complete" and out["plain"]["think:5"]["reason"] == "complete"
    assert "thinking_tokens" not in out["plain"]["think:5"]


def test_the_report_has_phase_columns_and_the_thinking_saved() -> None:
    recs = [record("a", THINK + ANSWER), record("plain", "It is \\boxed{9}.")]
    report = evaluate(with_phases(recs), parse_policies(["think:4", "cap:6"]), tokenizer=WS)
    rows = {r["policy"]: r for r in report.policies}
    assert (rows["uncapped"]["mean_thinking"], rows["uncapped"]["mean_answer"]) == (5.0, 3.5)
    assert (rows["think:4"]["thinking_saved_pct"], rows["think:4"]["thinking_cut"]) == (60.0, 1)
    assert (rows["think:4"]["mean_tokens"], rows["think:4"]["answer_estimated"]) == (5.5, 1)
    assert rows["cap:6"]["thinking_cut"] == 0 and rows["cap:6"]["thinking_traces"] == 1
    table = format_table(report).splitlines()
    assert table[1].split() == ["policy", "mean", "tok", "think", "tok", "answer", "tok", "think", "saved", "cut†",
                                "saved", "right", "acc", "lost", "gained", "loops", "stopped", "forced*", "n/a"]
    assert table[4].split()[:6] == ["think:4", "6", "2", "4", "60.0%", "1"]
    assert any(line.startswith("think tok / answer tok: mean tokens of the thinking and of the answer (1 of 2 "
                               "traces have a thinking") for line in table)


def test_the_command_reads_tags_and_writes_the_thinking_panel(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    rows = [{"id": "a", "question": "q", "text": THINK.replace("<think>", "[[").replace("</think>", "]]") + ANSWER,
             "reference": "9"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    png = tmp_path / "p.png"
    assert cli(["budget", str(path), "-p", "think:5", "--tokenizer", "whitespace", "--workers", "1", "--json",
                "--thinking-tags", "[[ ]]", "--plot", str(png)]) == 0
    (dataset,) = json.loads(capsys.readouterr().out)["datasets"]
    think = next(r for r in dataset["policies"] if r["policy"] == "think:5")
    assert (think["thinking_cut"], think["mean_thinking"]) == (1, 5.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli(["budget", str(path), "-p", "think:5", "--tokenizer", "whitespace", "--workers", "1", "--json"]) == 0
    (dataset,) = json.loads(capsys.readouterr().out)["datasets"]  # without the tags: no thinking to cap
    assert "thinking_traces" not in dataset["policies"][0]
    assert cli(["budget", str(path), "-p", "think:0", "--tokenizer", "whitespace"]) == 2
    assert "think needs a number of thinking tokens >= 1, got 0" in capsys.readouterr().err


def test_sky_t1_traces_split_into_thinking_and_answer(shared_data: Path) -> None:
    from interlock.monitor.replay import ImportedTrace, read_traces

    path = shared_data / "skythought" / "sky_t1_27b_math500.jsonl"
    items = list(read_traces(path))
    assert len(items) == 500 and all(isinstance(i, ImportedTrace) for i in items)
    kinds = [("none" if not i.phases else "closed" if i.phases[-1][1] == "answer" else "open")  # type: ignore[union-attr]
             for i in items]
    assert (kinds.count("closed"), kinds.count("open"), kinds.count("none")) == (196, 94, 210)
    # two closed thinkings hold only <|end_of_thought|>: they began inside the thinking
    assert sum(1 for i in items if i.phases and not i.text.startswith("<|begin_of_thought|>")) == 2  # type: ignore
    assert sum(i.labels["is_correct"] for i in items) == 300  # type: ignore[union-attr]
    records = with_phases([r for r in read_records(path) if isinstance(r, TraceRecord)])
    assert [bool(r.phases) for r in records] == [bool(i.phases) for i in items]  # type: ignore[union-attr]
    qwen = [i for i in read_traces(shared_data / "skythought" / "qwen25_math_7b_math500.jsonl")]
    assert len(qwen) == 500 and not any(i.phases for i in qwen)  # type: ignore[union-attr]
