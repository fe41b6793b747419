from __future__ import annotations

import json
import logging

import pytest
from interlock import Monitor
from interlock.generators import Scripted
from support import SumVerifier


async def test_events_are_logged_as_json_lines_bound_to_the_run_id(caplog: pytest.LogCaptureFixture) -> None:
    gen = Scripted({"": "So 3 + 4 = 8.\n", "redo this step.\n": "So 3 + 4 = 7."})
    with caplog.at_level(logging.INFO, logger="interlock"):
        result = await Monitor(gen, [SumVerifier()]).run("q")
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "interlock"]
    assert records and all(r["run_id"] == result.run_id for r in records)
    events = [r["event"] for r in records]
    assert events[0] == "run_started" and events[-1] == "end"
    assert "intervention" in events and "chunk" not in events  # chunks are logged at debug level only
    rollback = next(r for r in records if r["event"] == "intervention")
    assert rollback["action"] == "rollback" and rollback["span"] == [3, 12]


async def test_chunks_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="interlock"):
        await Monitor(Scripted("a b c"), []).run("q")
    chunks = [json.loads(r.getMessage()) for r in caplog.records if r.levelno == logging.DEBUG]
    assert [c["text"] for c in chunks] == ["a", " b", " c"]
