"""Scripted generators for ``interlock run --generator scripted_cli:NAME`` in tests (tests/ is on PYTHONPATH)."""

from __future__ import annotations

from interlock.generators import Scripted

LINES = "".join(f"Then 2 + {i} = {2 + i}.\n" for i in range(60))


def wrong_then_fixed() -> Scripted:
    """A wrong step, then 60 checked lines after the feedback, at 400 chunks a second."""
    return Scripted({"": "We add. 2 + 2 = 5.\nDone.\n", "Let me redo this step.\n": LINES}, rate=400)


# 170 characters, no final newline: wider than the terminal, and the last thing the run writes
LONG_LAST_LINE = ("The answer is four, because two and two make four, as everyone who has ever counted on their "
                  "fingers knows well, and so this last line goes on far past the terminal's edge.")


def long_last_line() -> Scripted:
    return Scripted(f"So 2 + 2 = 4.\n{LONG_LAST_LINE}")


def long_last_line_slow() -> Scripted:
    """The same, played at 100 pieces a second, so the live region shows the long line as it grows."""
    return Scripted(f"So 2 + 2 = 4.\n{LONG_LAST_LINE}", rate=100)


def instant() -> Scripted:
    return Scripted({"": "We add. 2 + 2 = 5.\nDone.\n", "Let me redo this step.\n": "2 + 2 = 4.\nDone.\n"})


def poem() -> Scripted:
    return Scripted("Roses are red,\nviolets are blue.\n")


def cut_short() -> Scripted:
    """Its own limit (5 pieces) ends the text inside a number: "12" was being written."""
    return Scripted(["So", " 3", " +", " 9", " = 1", "2 eggs.\n"], max_new_tokens=5)


def surrogate() -> Scripted:
    return Scripted(["Bad \ud800 text, 1 + 1 = 2.\n"])


def slow_to_load() -> Scripted:
    """Takes 1.5 s to build, as a model takes to load."""
    import time

    time.sleep(1.5)
    return Scripted("So 2 + 3 = 5.\nThen 5 + 1 = 6.\n", rate=20)


def past_the_bound() -> Scripted:
    """A wrong claim past the arithmetic verifier's reading bound (32,000 characters a step): undecided."""
    return Scripted(["We count " + "one more word and then " * 1600 + "so 2 + 2 = 5 in the end.\n"])
