"""Importers: plain text, JSON/JSONL steps with configurable fields, GSM8K solutions, trace files."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import Chunk, TraceFileError, TraceWriter
from interlock.monitor.replay.importers import FieldNames, ImportedTrace, detect_format, read_traces

HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

step_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
label_value = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=10), st.none())
label_key = st.text("abcdefghij_", min_size=1, max_size=8).filter(lambda k: k not in ("id", "steps", "text",
                                                                                      "prompt", "labels"))


def _traces(path: Path, **kw: object) -> list[ImportedTrace]:
    out = list(read_traces(path, **kw))  # type: ignore[arg-type]
    assert all(isinstance(t, ImportedTrace) for t in out), out
    return out  # type: ignore[return-value]


@HYP
@given(records=st.lists(st.tuples(st.integers(0, 10**9), st.lists(step_text, max_size=6),
                                  st.dictionaries(label_key, label_value, max_size=3)), min_size=1, max_size=5))
def test_jsonl_steps_round_trip(tmp_path: Path, records: list[tuple[int, list[str], dict[str, object]]]) -> None:
    path = tmp_path / "steps.jsonl"
    # Raw (not \\u-escaped) text: U+2028, \\x85 and friends must not split a record.
    path.write_text("\n".join(json.dumps({"id": i, "steps": s, **lab}, ensure_ascii=False)
                              for i, s, lab in records) + "\n", encoding="utf-8")
    traces = _traces(path)
    assert [t.id for t in traces] == [str(i) for i, _, _ in records]
    assert [t.text for t in traces] == ["\n".join(s) for _, s, _ in records]
    assert [dict(t.labels) for t in traces] == [lab for _, _, lab in records]
    assert [t.line for t in traces] == list(range(1, len(records) + 1))


@HYP
@given(steps=st.lists(step_text, min_size=1, max_size=5), sep=st.sampled_from(["\n", " ", "\n\n"]),
       prompt=step_text)
def test_custom_field_names_step_objects_and_a_json_array(tmp_path: Path, steps: list[str], sep: str,
                                                          prompt: str) -> None:
    records = [{"name": "a", "reasoning": [{"content": s} for s in steps], "q": prompt, "meta": {"split": "dev"}},
               {"name": "b", "content": "whole text", "q": ""}]
    path = tmp_path / "custom.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]", encoding="utf-8")
    fields = FieldNames(id="name", steps="reasoning", text="content", prompt="q", labels="meta", step_separator=sep)
    a, b = _traces(path, fields=fields)
    assert (a.id, a.text, a.prompt, dict(a.labels), a.line) == ("a", sep.join(steps), prompt, {"split": "dev"}, 2)
    assert (b.id, b.text, b.prompt, dict(b.labels), b.line) == ("b", "whole text", "", {}, 3)


def test_bad_records_are_reported_with_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"id": "ok1", "steps": ["a", "b"]}\n'
                    '{"id": "broken", "steps": \n'
                    "\n"
                    '{"id": "nosteps"}\n'
                    '{"id": "badstep", "steps": ["a", 3]}\n'
                    '[1, 2]\n'
                    '{"id": "ok2", "text": "x = 1"}\n', encoding="utf-8")
    out = list(read_traces(path))
    kinds = [(type(o).__name__, getattr(o, "line", None)) for o in out]
    assert kinds == [("ImportedTrace", 1), ("TraceFileError", 2), ("TraceFileError", 4), ("TraceFileError", 5),
                     ("TraceFileError", 6), ("ImportedTrace", 7)]
    assert str(out[1]).startswith(f"{path}:2: not valid JSON")
    assert str(out[2]) == f"{path}:4: record has neither 'steps' (a list of steps) nor 'text' (a string)"
    assert "step 1 of field 'steps'" in str(out[3])
    assert str(out[4]) == f"{path}:6: a record must be a JSON object, got list"


def test_a_missing_file_is_one_error_not_an_exception(tmp_path: Path) -> None:
    out = list(read_traces(tmp_path / "nope.jsonl"))
    assert len(out) == 1 and isinstance(out[0], TraceFileError)
    assert out[0].path == str(tmp_path / "nope.jsonl") and "cannot read file" in str(out[0])


@HYP
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200).filter(str.strip))
def test_plain_text_is_one_trace_kept_exactly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "answer.txt"
    path.write_bytes(text.encode("utf-8"))
    (trace,) = _traces(path)
    assert (trace.id, trace.text, trace.path) == ("answer.txt", text, str(path))
    assert "".join(s.chunk.text for s in trace.pieces()) == text


def _gsm8k_record(question: str, solutions: dict[str, tuple[str, bool]]) -> dict[str, object]:
    record: dict[str, object] = {"question": question, "ground_truth": "So 2 + 2 = <<2+2=4>>4.\nA: 4"}
    for key, (solution, correct) in solutions.items():
        record[key] = {"is_correct": correct, "solution": solution}
    return record


@HYP
@given(solutions=st.dictionaries(st.sampled_from(["6b_finetuning", "6b_verification", "175b_finetuning"]),
                                 st.tuples(step_text, st.booleans()), min_size=1))
def test_gsm8k_model_solutions_become_one_trace_each(tmp_path: Path, solutions: dict[str, tuple[str, bool]]) -> None:
    path = tmp_path / "sols.jsonl"
    path.write_text(json.dumps(_gsm8k_record("Q1?", {"x": ("1 + 1 = 2\nA: 2", True)})) + "\n"
                    + json.dumps(_gsm8k_record("Q2?", solutions)) + "\n", encoding="utf-8")
    assert detect_format(path) == "gsm8k"
    traces = _traces(path)
    assert traces[0].id == "sols.jsonl:1/x"
    assert dict(traces[0].labels) == {"source": "x", "is_correct": True, "answer": "2", "expected": "4"}
    rest = traces[1:]
    assert [t.id for t in rest] == [f"sols.jsonl:2/{k}" for k in solutions]
    assert [t.text for t in rest] == [s for s, _ in solutions.values()]
    assert [t.labels["is_correct"] for t in rest] == [c for _, c in solutions.values()]
    assert all(t.prompt == "Q2?" and t.line == 2 and t.labels["expected"] == "4" for t in rest)


def test_gsm8k_reference_solutions(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    answer = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18"
    path.write_text(json.dumps({"question": "Ducks?", "answer": answer}) + "\n" + '{"question": 3}\n',
                    encoding="utf-8")
    good, bad = read_traces(path, format="gsm8k")
    assert isinstance(good, ImportedTrace) and isinstance(bad, TraceFileError)
    assert (good.id, good.text, good.prompt) == ("test.jsonl:1", answer, "Ducks?")
    assert dict(good.labels) == {"source": "reference", "is_correct": True, "answer": "18"}
    assert bad.line == 2 and "string field 'question'" in str(bad)


def test_the_shared_gsm8k_files(shared_data: Path) -> None:
    solutions = _traces(shared_data / "gsm8k" / "example_model_solutions.jsonl")
    assert len(solutions) == 5276
    assert len({t.id for t in solutions}) == 5276
    assert sum(t.labels["is_correct"] is True for t in solutions) + sum(
        t.labels["is_correct"] is False for t in solutions) == 5276
    first = solutions[0]
    assert first.id == "example_model_solutions.jsonl:1/6b_finetuning"
    assert first.text.endswith("A: 26") and first.labels["expected"] == "18"
    reference = _traces(shared_data / "gsm8k" / "test.jsonl")
    assert len(reference) == 1319 and reference[0].labels["answer"] == "18"


def test_a_trace_file_with_a_rollback_imports_its_final_text(tmp_path: Path) -> None:
    path = tmp_path / "run.trace.jsonl"
    w = TraceWriter(path, prompt="p", meta={"model": "tiny"})
    w.chunk(Chunk("Start.\n", token_ids=(1, 2)), t=0.1)
    w.chunk(Chunk("2 + 2 = 5.\nMore", token_ids=(3, 4, 5)), t=0.2)
    w.event({"kind": "intervention", "action": "rollback", "applied": True, "position": 7})
    w.event({"kind": "inject", "text": "Wait, 2 + 2 is 4.\n", "position": 7})
    w.chunk(Chunk("2 + 2 = 4.", token_ids=(6, 7)), t=0.3)
    w.event({"kind": "intervention", "action": "rollback", "applied": False, "position": 0})
    w.end({"stop_reason": "complete"})
    (trace,) = _traces(path)
    assert detect_format(path) == "trace"
    assert trace.text == "Start.\nWait, 2 + 2 is 4.\n2 + 2 = 4."
    assert [(s.chunk.text, s.injected) for s in trace.pieces()] == [
        ("Start.\n", False), ("Wait, 2 + 2 is 4.\n", True), ("2 + 2 = 4.", False)]
    assert trace.tokens == 4 and trace.id == "run.trace.jsonl" and dict(trace.labels) == {"model": "tiny"}


@HYP
@given(pieces=st.lists(step_text, min_size=1, max_size=5))
def test_trace_files_keep_any_text(tmp_path: Path, pieces: list[str]) -> None:
    path = tmp_path / "any.trace.jsonl"
    w = TraceWriter(path, prompt="p")
    for piece in pieces:
        w.chunk(Chunk(piece))
    w.end({})
    (trace,) = _traces(path)
    assert trace.text == "".join(pieces)


def test_a_rollback_inside_a_chunk_keeps_the_part_before_it(tmp_path: Path) -> None:
    path = tmp_path / "cut.trace.jsonl"
    w = TraceWriter(path, prompt="")
    w.chunk(Chunk("ab\ncd", token_ids=(1, 2)), t=0.0)
    w.event({"kind": "intervention", "action": "rollback", "applied": True, "position": 3})
    w.chunk(Chunk("ef"), t=0.1)
    w.event({"kind": "intervention", "action": "rollback", "applied": True, "position": 99})
    w.end({})
    from interlock import read_trace

    recorded = read_trace(path)
    try:
        recorded.final_text()
    except TraceFileError as exc:
        assert "position 99 is outside the 5 characters" in str(exc)
    else:
        raise AssertionError("a rollback past the end must be rejected")
    recorded.events.pop()
    recorded.event_chunks.pop()
    segments = recorded.final_segments()
    assert [s.chunk for s in segments] == [Chunk("ab\n", token_ids=(1, 2)), Chunk("ef")]


def test_common_dataset_layouts_need_no_field_options(tmp_path: Path) -> None:
    records = [
        # process-supervision layout: the problem, its steps, labels beside them
        {"id": "pb-0", "problem": "Janet has 16 eggs.", "steps": ["She eats 3.", "16 - 3 = 12 left."],
         "final_answer_correct": False, "label": 1},
        # question and response, no steps
        {"id": "qr-1", "question": "What is 12*7?", "response": "12*7 = 84", "model": "m"},
        # a Game of 24 puzzle as numbers and a solution text
        {"id": "g24", "numbers": [4, 9, 10, 13], "solution": "Answer: (10 - 4) * (13 - 9) = 24"},
        # the question and its final answer beside the steps: steps, not a GSM8K reference solution
        {"id": "qa", "question": "What is 3 + 4?", "answer": "7", "steps": ["3 + 4 = 7"]},
    ]
    path = tmp_path / "mixed_layouts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    assert detect_format(path) == "jsonl"
    pb, qr, g24, qa = _traces(path)
    assert (pb.prompt, pb.text, dict(pb.labels)) == ("Janet has 16 eggs.", "She eats 3.\n16 - 3 = 12 left.",
                                                     {"final_answer_correct": False, "label": 1})
    assert (qr.prompt, qr.text, dict(qr.labels)) == ("What is 12*7?", "12*7 = 84", {"model": "m"})
    assert (g24.prompt, g24.text, dict(g24.labels)) == ("4 9 10 13", "Answer: (10 - 4) * (13 - 9) = 24", {})
    assert (qa.prompt, qa.text, dict(qa.labels)) == ("What is 3 + 4?", "3 + 4 = 7", {"answer": "7"})
    # a field named explicitly still wins over the fallbacks
    explicit = _traces(path, fields=FieldNames(prompt="question"))
    assert [t.prompt for t in explicit] == ["Janet has 16 eggs.", "What is 12*7?", "4 9 10 13", "What is 3 + 4?"]


def test_parquet_rows_stream_as_records_with_row_numbers_and_nulls_as_absent_fields(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "a", "steps": ["1 + 1 = 2"], "text": None, "model": "m"},
            {"id": "b", "steps": None, "text": "whole", "model": None},
            {"id": "c", "steps": None, "text": None, "model": "m"}]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    a, b, c = read_traces(path)
    assert isinstance(a, ImportedTrace) and (a.id, a.text, a.line, dict(a.labels)) == ("a", "1 + 1 = 2", 1,
                                                                                      {"model": "m"})
    assert isinstance(b, ImportedTrace) and (b.id, b.text, b.line, dict(b.labels)) == ("b", "whole", 2, {})
    assert str(c) == f"{path}:3: record has neither 'steps' (a list of steps) nor 'text' (a string)"


def test_parquet_of_gsm8k_records_gives_a_trace_per_solution(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    record = _gsm8k_record("q?", {"m1": ("So 2 + 2 = 4.\nA: 4", True), "m2": ("So 2 + 2 = 5.\nA: 5", False)})
    path = tmp_path / "g.parquet"
    pq.write_table(pa.Table.from_pylist([record]), path)
    items = _traces(path)
    assert [(t.id, t.labels["is_correct"], t.labels["expected"]) for t in items] == [
        ("g.parquet:1/m1", True, "4"), ("g.parquet:1/m2", False, "4")]
