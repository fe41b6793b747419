"""The HTML report: marked spans nest and cover exactly their text, trace text is escaped, and in a real
(headless Chromium) browser the marks are there and the filters hide what they should."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
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
        self.dom = ""

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
            a["article"] = str(len(self.articles) - 1)
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


def test_records_travel_as_json_with_no_markup_and_nothing_to_fetch() -> None:
    html = render_html(_reports())
    page = _parse(html)
    assert page.scripts == 2 and page.imgs == 0  # the data and the report's own script
    assert "<script>document" not in html and "</div><script>" not in html  # trace text is data, not markup
    assert "&lt;b&gt;fails-style&lt;/b&gt;" not in html  # (inserted as text by the page, escaped by JSON here)
    assert "\\u003cb>fails-style\\u003c/b>" in html
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert "default-src 'none'" in html
    assert 'data-total="traces">3<' in html and 'data-total="read-errors">1<' in html
    assert "bad.jsonl:2: not valid JSON" in html


def test_lone_surrogates_become_replacement_characters_and_the_page_says_so(tmp_path: Path) -> None:
    report = TraceReport(id="bad\ud800id", text="Bad \udfff text, 2 + 2 = 4.\n",
                         verdicts=(Pass(span=Span(0, 20), verifier="sums"),))
    path = write_html(tmp_path / "r.html", [report])
    page = path.read_text(encoding="utf-8")
    assert len(page) > 1000
    assert "bad\ufffdid" in page and "Bad \ufffd text" in page
    assert "2 lone surrogate(s) in the input were shown as U+FFFD." in page


def test_flag_rates_by_label_with_precision_and_recall() -> None:
    reports = [TraceReport(id=f"t{i}", text="x", labels={"is_correct": correct},
                           verdicts=(Fail("no", span=Span(0, 1), verifier="sums"),) if flagged else ())
               for i, (correct, flagged) in enumerate([(False, True)] * 3 + [(False, False)] + [(True, True)]
                                                      + [(True, False)] * 5)]
    html = render_html(reports)
    # 3 of 4 wrong answers flagged (recall 0.75); 3 of the 4 flagged are wrong (precision 0.75); 1 of 6 right ones
    assert 'data-label="is_correct" data-precision="0.75" data-recall="0.75"' in html
    assert "3 of 4 flagged (75.0%)" in html and "1 of 6 flagged (16.7%)" in html
    assert "precision 0.750 · recall 0.750" in html


# -- in a real browser ------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _dump_dom(url: str, budget_ms: int = 5000) -> Page:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    page = _parse(done.stdout)
    page.dom = done.stdout
    return page


@pytest.fixture(scope="module")
def report_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = write_html(tmp_path_factory.mktemp("report") / "report.html", _reports())
    return path.resolve().as_uri()


def test_browser_opens_on_the_flagged_traces_most_flagged_first(report_url: str) -> None:
    page = _dump_dom(report_url)
    assert page.body.get("data-filtered") == "1"  # the report's script ran
    assert page.imgs == 0  # the hostile trace text stayed text
    assert [a["data-id"] for a in page.articles] == ["fails-sums", "<b>fails-style</b>"]
    assert page.shown == "2 of 3 traces shown"


def test_browser_marks_the_spans_and_gives_each_reason_once(report_url: str) -> None:
    page = _dump_dom(report_url + "#outcome=all&sort=file")
    assert [a["data-id"] for a in page.articles] == ["fails-sums", "passes", "<b>fails-style</b>"]
    fails = {(m["data-verifier"], m["data-span"]) for m in page.marks if m["data-verdict"] == "fail"}
    assert fails == {("sums", "8,17"), ("style", "16,99")}
    assert {m["data-span"] for m in page.marks if m["data-verdict"] == "pass"} >= {"24,45", "0,10"}
    first = page.marks.index(next(m for m in page.marks if m["data-span"] == "8,17"))
    assert page.mark_text[first] == "3 + 4 = 8"
    assert page.shown == "3 of 3 traces shown"
    # a trace's badge says what `interlock run` would: violation, verified (checked and passed), unchecked
    assert page.dom.count('data-word="violation">violation<') == 2
    assert page.dom.count('data-word="verified">verified<') == 1
    assert ('<li class="fail" data-verifier="sums" data-verdict="fail" data-v="0" data-span="8,17" data-count="1">'
            '<b>sums</b> fail (rollback): 3 + 4 is 7, not 8<span class="count"></span>'
            '<span class="fb">feedback: 3 + 4 = 7.</span></li>') in page.dom


def test_browser_names_the_verifier_once_and_keeps_unchecked_steps_uncoloured(tmp_path: Path) -> None:
    text = "She sells 16 - 7 = 8 eggs.\nShe is happy.\n"
    claim = Span(10, 20)
    mixed = TraceReport(id="mixed", text=text, verdicts=(
        Fail("arithmetic: 16 - 7 is 9, not 8.", span=claim, verifier="arithmetic", action=Action.ROLLBACK,
             feedback="16 - 7 is 9, not 8."),
        Pass(note="0 calculations checked", span=Span(27, 41), verifier="arithmetic", checked=False)))
    plain = TraceReport(id="plain", text="She is happy.\n", verdicts=(
        Pass(note="0 calculations checked", span=Span(0, 14), verifier="arithmetic", checked=False),))
    checked = TraceReport(id="checked", text="1 + 1 = 2.\n", verdicts=(
        Pass(note="1 calculation checked", span=Span(0, 9), verifier="arithmetic"),))
    page = _dump_dom(write_html(tmp_path / "r.html", [mixed, plain, checked]).resolve().as_uri()
                     + "#outcome=all&sort=file")
    # the verifier's name once, the message without it, and no feedback line repeating the message
    assert ('<b>arithmetic</b> fail (rollback): 16 - 7 is 9, not 8.<span class="count"></span></li>') in page.dom
    assert "First violation: <b>arithmetic</b> at [10, 20): 16 - 7 is 9, not 8.</p>" in page.dom
    assert "arithmetic: 16 - 7" not in page.dom  # (the tooltip reads "arithmetic: fail: 16 - 7 is 9, not 8.")
    # a step that passed with nothing checked is not painted as verified, nor is a trace of such steps
    unchecked = [m for m in page.marks if m["data-verdict"] == "pass" and m.get("data-checked") == "0"]
    assert sorted(str(m["data-span"]) for m in unchecked) == ["0,14", "27,41"]
    assert [m.get("data-checked") for m in page.marks if m["data-span"] == "0,9"] == [None]
    assert [(a["data-id"], a["data-word"]) for a in page.articles] == [
        ("mixed", "violation"), ("plain", "unchecked"), ("checked", "verified")]
    assert 'class="badge outcome-unchecked" data-word="unchecked">unchecked<' in page.dom
    assert 'class="badge outcome-pass" data-word="verified">verified<' in page.dom


def test_rates_are_rounded_to_three_figures() -> None:
    from interlock.monitor.replay.engine import ReplayTotals

    reports: list[TraceReport | ReadFailure] = [TraceReport(id="t", text="x", verdicts=())]
    html = render_html(reports, ReplayTotals(traces=24594, tokens=161903, seconds=100.0))
    assert 'data-total="traces-per-s">246<' in html and 'data-total="tokens-per-s">1,619<' in html
    html = render_html(reports, ReplayTotals(traces=3074, tokens=5, seconds=100.0))
    assert 'data-total="traces-per-s">30.7<' in html and 'data-total="tokens-per-s">0.05<' in html


def test_browser_filter_by_verifier_recomputes_the_outcome(report_url: str) -> None:
    page = _dump_dom(report_url + "#outcome=fail&verifiers=sums")
    assert [a["data-id"] for a in page.articles] == ["fails-sums"]
    page = _dump_dom(report_url + "#outcome=all&verifiers=sums&sort=file")
    style_marks = [m for m in page.marks if m["data-verifier"] == "style"]
    assert style_marks and all("off" in (m.get("class") or "").split() for m in style_marks)
    assert all("off" not in (m.get("class") or "").split() for m in page.marks if m["data-verifier"] == "sums")


def test_browser_marks_nest_and_cover_exactly_their_spans(tmp_path: Path) -> None:
    rnd = random.Random(7)
    reports: list[TraceReport | ReadFailure] = []
    cases = []
    for k in range(40):
        text = "".join(rnd.choice("ab <&>\n. ") for _ in range(rnd.randint(1, 40)))
        n = len(text)
        spans = [Span(*sorted((rnd.randint(0, n), rnd.randint(0, n)))) for _ in range(rnd.randint(0, 6))]
        verdicts = tuple(Fail("x", span=s, verifier=f"v{i % 2}") if i % 3 else Pass(span=s, verifier=f"v{i % 2}")
                         for i, s in enumerate(spans))
        reports.append(TraceReport(id=f"case-{k:02d}", text=text, verdicts=verdicts))
        cases.append((text, spans))
    page = _dump_dom(write_html(tmp_path / "nest.html", reports).resolve().as_uri() + "#outcome=all&sort=file")
    assert not page.stack  # every </mark> closed one that was open
    assert "".join(page.text_div) == "".join(text for text, _ in cases)
    covered: dict[tuple[int, str], str] = {}
    article = -1
    for i, mark in enumerate(page.marks):
        article = int(str(mark["article"]))
        key = (article, str(mark["data-v"]))
        covered[key] = covered.get(key, "") + page.mark_text.get(i, "")
    for k, (text, spans) in enumerate(cases):
        for i, span in enumerate(spans):
            assert covered.get((k, str(i)), "") == text[span.start:span.end]


def test_browser_pages_hold_50_traces_and_the_page_is_in_the_url(tmp_path: Path) -> None:
    reports: list[TraceReport | ReadFailure] = [
        TraceReport(id=f"t{k:03d}", text="1 + 1 = 2.", verdicts=(Pass(span=Span(0, 10), verifier="sums"),))
        for k in range(120)]
    url = write_html(tmp_path / "pages.html", reports).resolve().as_uri()
    page = _dump_dom(url + "#outcome=all&sort=file&page=2")
    assert [a["data-id"] for a in page.articles] == [f"t{k:03d}" for k in range(50, 100)]
    assert "page 2 of 3" in page.dom and page.shown == "120 of 120 traces shown"
    page = _dump_dom(url)  # nothing flagged: it opens on all traces, page 1
    assert [a["data-id"] for a in page.articles][:2] == ["t000", "t001"] and len(page.articles) == 50


@pytest.mark.slow  # ~10 s (50,000 reports built and rendered); still runs in CI
def test_browser_a_50000_trace_report_opens_on_its_first_page(tmp_path: Path) -> None:
    import time

    rnd = random.Random(0)
    reports: list[TraceReport | ReadFailure] = []
    for k in range(50_000):
        wrong = rnd.random() < 0.2
        lines, verdicts, pos = [], [], 0
        for j in range(4):
            a, b = rnd.randint(2, 99), rnd.randint(2, 99)
            c = a + b + (1 if wrong and j == 2 else 0)
            line = f"She has {a} + {b} = {c} eggs after step {j}, so she keeps going.\n"
            start = pos + line.index("+") - len(str(a)) - 1
            claim = Span(start, start + len(f"{a} + {b} = {c}"))
            verdicts.append(Fail(f"arithmetic: {a} + {b} is {a + b}, not {c}.", span=claim, verifier="arithmetic")
                            if wrong and j == 2 else Pass(note="1 calculation checked", span=claim,
                                                          verifier="arithmetic"))
            lines.append(line)
            pos += len(line)
        reports.append(TraceReport(id=f"gsm8k-{k}", text="".join(lines), verdicts=tuple(verdicts),
                                   prompt=f"Question {k // 8}: Janet's ducks lay 16 eggs per day. How much?",
                                   labels={"is_correct": not wrong}, path="solutions.jsonl", line=k + 1))
    flagged = sum(1 for r in reports if isinstance(r, TraceReport) and r.failures)
    path = write_html(tmp_path / "big.html", reports)
    size = path.stat().st_size
    started = time.perf_counter()
    page = _dump_dom(path.resolve().as_uri(), budget_ms=20000)
    wall = time.perf_counter() - started
    print(f"\n50,000-trace report: {size / 1e6:.2f} MB; chromium --dump-dom {wall:.2f} s; "
          f"in-page load to first page {page.body.get('data-render-ms')} ms")
    assert size < 10_000_000
    assert len(page.articles) == 50  # one page in the DOM, not 50,000 traces
    assert page.shown == f"{flagged} of 50000 traces shown"
    assert all(a["data-outcome"] == "fail" for a in page.articles)
    assert "precision 1.000 · recall 1.000" in page.dom


def test_report_written_for_a_path(tmp_path: Path) -> None:
    path = write_html(tmp_path / "r.html", _reports(), title="GSM8K & co")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "<title>GSM8K &amp; co</title>" in path.read_text(encoding="utf-8")


def test_browser_shows_the_thinking_apart_from_the_answer(tmp_path: Path) -> None:
    text = "<think>\n7 * 8 = 54.\n</think>\n\nThe answer is 56."
    report = TraceReport(id="thinker", text=text, verdicts=(Fail("7 * 8 is 56, not 54", span=Span(8, 18),
                                                                 verifier="arithmetic"),),
                         phases=((0, "thinking"), (text.index("\n\nThe"), "answer")))
    page = _dump_dom(write_html(tmp_path / "r.html", [report]).resolve().as_uri())
    assert '<div class="phase">thinking</div>' in page.dom and '<div class="phase">answer</div>' in page.dom
    assert 'class="step thinking" data-span="8,20" data-phase="thinking"' in page.dom
    assert 'class="step" data-span="30,47" data-phase="answer"' in page.dom
