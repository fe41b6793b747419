"""Text shown to people reads as written: a rolled-back tool call's ``removed_text`` has its spaces, while the
trace keeps the marker escaped (one step, no boundary inside)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import hypothesis.strategies as st
from hypothesis import given
from interlock import Capabilities, Chunk, Fail, GenerationRequest, Monitor, Step, verifier
from interlock.monitor.chunks import ToolCallRequest, readable_markers, tool_calls_chunk

CALL = ToolCallRequest(id="call_1", name="transfer",
                       arguments='{"to": "Bob Stone", "amount": 500, "note": "rent <May>"}')


def test_the_marker_escapes_and_the_readable_form_does_not() -> None:
    marker = CALL.marker()
    assert " " not in marker.removesuffix("\n") and "\\u0020" in marker
    assert readable_markers(f"Paying now.\n{marker}") == (
        'Paying now.\n<tool_call>{"id":"call_1","name":"transfer","arguments":"{\\"to\\": \\"Bob Stone\\", '
        '\\"amount\\": 500, \\"note\\": \\"rent <May>\\"}"}</tool_call>\n')


def test_text_without_a_valid_marker_is_left_as_it_is() -> None:
    for text in ("plain text, no call", "<tool_call>{not json}</tool_call>\n", "a \\u0020 the model wrote"):
        assert readable_markers(text) == text


@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=60))
def test_the_readable_form_holds_the_same_call(call_id: str, name: str, arguments: str) -> None:
    call = ToolCallRequest(id=call_id, name=name, arguments=arguments)
    shown = readable_markers(call.marker())
    assert shown.startswith("<tool_call>") and shown.endswith("</tool_call>\n")
    body = json.loads(shown.removeprefix("<tool_call>").removesuffix("</tool_call>\n"))
    assert body == {"id": call_id, "name": name, "arguments": arguments}


class _Caller:
    """Writes a sentence, then the call; after the feedback, a sentence instead."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(resumable=True)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.prefix.endswith("Let me redo this step.\n"):
            yield Chunk("I will ask first.\n")
            return
        yield Chunk("Paying now.\n")
        yield tool_calls_chunk([CALL], after="Paying now.\n")


@verifier(name="limit", action="rollback")
def limit(step: Step) -> Fail | None:
    if step.text.startswith("<tool_call>") and "500" in step.text:
        return Fail("500 is over the limit", feedback="A transfer may move at most 100.")
    return None


async def test_a_rolled_back_tool_call_reads_with_its_spaces_in_removed_text() -> None:
    result = await Monitor(_Caller(), verifiers=[limit]).run("pay Bob")
    [rollback] = result.interventions
    assert rollback.removed_text == readable_markers(CALL.marker())
    assert "\\u0020" not in rollback.removed_text and '\\"to\\": \\"Bob Stone\\"' in rollback.removed_text
    assert rollback.to_dict()["removed_text"] == rollback.removed_text
    assert result.text == ("Paying now.\nWait, a transfer may move at most 100. Let me redo this step.\n"
                           "I will ask first.\n")
