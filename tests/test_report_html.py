"""The HTML report: marked spans nest and cover exactly their text, trace text is escaped, and in a real
(headless Chromium) browser the marks are there and the filters hide what they should."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Action, Fail, Pass, Span, Unknown
from interlock.monitor.replay.engine import ReadFailure, TraceReport
from interlock.monitor.replay.report_html import render_html, write_html


class Page(HTMLParser):
    """Collects articles, marks (with the text inside each), feedback items and scripts of a report."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.articles: list[dict[str, str | None]] = []
        self.marks: list[dict[str, str | None]] = []
        self.mark_text: dict[int, str] = {}
        self.stack: list[int] = []
        self.scripts = 0
        self.imgs = 0
        self.in_text = 0
        self.text_div: list[str] = []
        self.shown = ""
        self._in_shown = False
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "article":
            self.articles.append(a)
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.imgs += 1
        if tag == "span" and a.get("id") == "shown":
            self._in_shown = True
        if tag == "div" and a.get("class") == "text":
            self.in_text += 1
        if tag == "mark":
            self.marks.append(a)
            self.stack.append(len(self.marks) - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self.stack.pop()
        if tag == "div" and self.in_text:
            self.in_text = 0
        if tag == "span":
            self._in_shown = False

    def handle_data(self, data: str) -> None:
        if self._in_shown:
            self.shown += data
        if self.in_text:
            self.text_div.append(data)
        for i in self.stack:
            self.mark_text[i] = self.mark_text.get(i, "") + data


def _parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def _reports() -> list[TraceReport | ReadFailure]:
    a_text = "She has 3 + 4 = 8 eggs.\nShe sells 1 + 1 = 2.\n"
    a = TraceReport(id="fails-sums", text=a_text, labels={"is_correct": False},
                    verdicts=(Fail("3 + 4 is 7, not 8", span=Span(8, 17), verifier="sums", action=Action.ROLLBACK,
                                   feedback="3 + 4 = 7."),
                              Pass(span=Span(24, 45), verifier="sums"),
                              Pass(span=Span(0, 45), verifier="style")))
    b = TraceReport(id="passes", text="1 + 2 = 3.", labels={"is_correct": True},
                    verdicts=(Pass(span=Span(0, 10), verifier="sums"), Pass(span=Span(0, 10), verifier="style")))
    hostile = '</div><script>document.title="pwned"</script><img src=x onerror="document.title=1">'
    c = TraceReport(id="<b>fails-style</b>", text=f"Fine 2 + 2 = 4. {hostile}\n", labels={"note": "<i>x</i>"},
                    verdicts=(Pass(span=Span(0, 16), verifier="sums"),
                              Fail("markup in the answer", span=Span(16, 16 + len(hostile)), verifier="style"),
                              Unknown(reason="too long", span=Span(0, 16), verifier="sums")))
    return [a, b, ReadFailure("bad.jsonl", 2, "bad.jsonl:2: not valid JSON"), c]


def test_spans_are_marked_with_stable_attributes_and_feedback_beside_them() -> None:
    page = _parse(render_html(_reports()))
    fails = [m for m in page.marks if m["data-verdict"] == "fail"]
    assert [(m["data-verifier"], m["data-span"]) for m in fails] == [("sums", "8,17"), ("style", "16,99")]
    assert page.mark_text[page.marks.index(fails[0])] == "3 + 4 = 8"
    assert [a["data-outcome"] for a in page.articles] == ["fail", "pass", "fail"]
    assert [a["data-failed"] for a in page.articles] == ["sums", "", "style"]
    assert [a["data-unknown"] for a in page.articles] == ["", "", "sums"]
    html = render_html(_reports())
    assert '<li class="fail" data-verifier="sums" data-verdict="fail" data-v="0" data-span="8,17"><b>sums</b> fail ' \
           "(rollback): 3 + 4 is 7, not 8<span class=\"fb\">feedback: 3 + 4 = 7.</span></li>" in html
    assert 'data-total="traces">3<' in html and 'data-total="read-errors">1<' in html
    assert "bad.jsonl:2: not valid JSON" in html


def test_trace_text_ids_and_labels_are_escaped() -> None:
    html = render_html(_reports())
    page = _parse(html)
    assert page.scripts == 1 and page.imgs == 0  # only the report's own script
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in html
    assert "&lt;b&gt;fails-style&lt;/b&gt;" in html and "note=&lt;i&gt;x&lt;/i&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert "default-src 'none'" in html


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_marks_always_nest_and_cover_exactly_their_span(data: st.DataObject) -> None:
    text = data.draw(st.text(st.sampled_from("ab <&>\n. "), min_size=1, max_size=40))
    n = len(text)
    spans = data.draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, n)).map(lambda p: Span(min(p), max(p))),
                               max_size=6))
    verdicts = tuple(Fail("x", span=s, verifier=f"v{i % 2}") if i % 3 else Pass(span=s, verifier=f"v{i % 2}")
                     for i, s in enumerate(spans))
    report = TraceReport(id="t", text=text, verdicts=verdicts)
    page = _parse(render_html([report]))  # the parser raises IndexError on an unbalanced </mark>
    assert not page.stack
    assert "".join(page.text_div) == text
    covered: dict[str, str] = {}
    for i, mark in enumerate(page.marks):
        covered[str(mark["data-v"])] = covered.get(str(mark["data-v"]), "") + page.mark_text.get(i, "")
    for i, span in enumerate(spans):
        if span.start < span.end:
            assert covered[str(i)] == text[span.start:span.end]
        elif span.start < n or span.start == n:
            assert covered.get(str(i), "") == ""


# -- in a real browser ------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _dump_dom(url: str) -> Page:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return _parse(done.stdout)


@pytest.fixture(scope="module")
def report_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = write_html(tmp_path_factory.mktemp("report") / "report.html", _reports())
    return path.resolve().as_uri()


def test_browser_finds_the_marked_spans(report_url: str) -> None:
    page = _dump_dom(report_url)
    assert page.body.get("data-filtered") == "1"  # the report's script ran
    assert page.scripts == 1 and page.imgs == 0  # the hostile trace text stayed text
    fails = {(m["data-verifier"], m["data-span"]) for m in page.marks if m["data-verdict"] == "fail"}
    assert fails == {("sums", "8,17"), ("style", "16,99")}
    assert {m["data-span"] for m in page.marks if m["data-verdict"] == "pass"} >= {"24,45", "0,10"}
    assert all("hidden" not in a for a in page.articles)
    assert page.shown == "3 of 3 traces shown"


def test_browser_filter_by_outcome_hides_the_passing_traces(report_url: str) -> None:
    page = _dump_dom(report_url + "#outcome=fail")
    assert [(a["data-id"], "hidden" in a) for a in page.articles] == [
        ("fails-sums", False), ("passes", True), ("<b>fails-style</b>", False)]
    assert page.shown == "2 of 3 traces shown"


def test_browser_filter_by_verifier_recomputes_the_outcome(report_url: str) -> None:
    page = _dump_dom(report_url + "#outcome=fail&verifiers=sums")
    assert [(a["data-id"], "hidden" in a) for a in page.articles] == [
        ("fails-sums", False), ("passes", True), ("<b>fails-style</b>", True)]
    style_marks = [m for m in page.marks if m["data-verifier"] == "style"]
    assert style_marks and all("off" in (m.get("class") or "").split() for m in style_marks)
    assert all("off" not in (m.get("class") or "").split() for m in page.marks if m["data-verifier"] == "sums")


def test_report_written_for_a_path(tmp_path: Path) -> None:
    path = write_html(tmp_path / "r.html", _reports(), title="GSM8K & co")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "<title>GSM8K &amp; co</title>" in path.read_text(encoding="utf-8")
