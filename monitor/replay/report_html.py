"""A replay report a person can read: one self-contained HTML file (inline CSS and JS, no network).

Totals at the top; then each trace with its id, labels and steps, the spans every verdict points at marked in
the text (``<mark data-verdict="fail" data-verifier="arithmetic" data-span="12,30">``) and the feedback beside
the step. Filters by verifier and by outcome run in the page; their state lives in the URL fragment
(``report.html#outcome=fail&verifiers=arithmetic``) so a filtered view can be shared or opened directly.
All trace text is untrusted and escaped; a Content-Security-Policy forbids any network access.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

from interlock.monitor.replay.engine import ReadFailure, ReplayTotals, TraceReport
from interlock.monitor.verdicts import Fail, Span, Unknown, Verdict

__all__ = ["render_html", "write_html"]

_CSS = """
:root { --fail: #fde2e1; --fail-line: #c62828; --pass: #e6f4ea; --pass-line: #2e7d32; --unknown: #fff4d6;
        --unknown-line: #b26a00; --muted: #5f6368; --border: #dadce0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #202124; }
header { padding: 16px 24px; border-bottom: 1px solid var(--border); background: #f8f9fa; }
h1 { font-size: 20px; margin: 0 0 12px; }
h2 { font-size: 15px; margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
.totals { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 0; }
.totals div { min-width: 110px; }
.totals dt { color: var(--muted); font-size: 12px; }
.totals dd { margin: 0; font-size: 18px; font-weight: 600; }
table.breakdown { border-collapse: collapse; margin-top: 12px; font-size: 13px; }
table.breakdown th, table.breakdown td { border: 1px solid var(--border); padding: 2px 8px; text-align: right; }
table.breakdown th:first-child, table.breakdown td:first-child { text-align: left; }
#filters { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 16px; align-items: center;
           padding: 8px 24px; background: #fff; border-bottom: 1px solid var(--border); }
#filters fieldset { border: 0; padding: 0; margin: 0; display: flex; gap: 10px; align-items: center; }
#filters legend { float: left; margin-right: 6px; color: var(--muted); }
#shown { color: var(--muted); margin-left: auto; }
main { padding: 8px 24px 48px; }
.trace { border: 1px solid var(--border); border-radius: 6px; margin: 12px 0; padding: 10px 12px; }
.trace[data-outcome="fail"] { border-left: 4px solid var(--fail-line); }
.trace[data-outcome="pass"] { border-left: 4px solid var(--pass-line); }
.trace[data-outcome="unknown"] { border-left: 4px solid var(--unknown-line); }
.trace > .head { display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline; margin-bottom: 6px; }
.badge { font-size: 12px; padding: 0 6px; border-radius: 10px; background: #f1f3f4; color: #3c4043; }
.badge.outcome-fail { background: var(--fail); color: var(--fail-line); }
.badge.outcome-pass { background: var(--pass); color: var(--pass-line); }
.badge.outcome-unknown { background: var(--unknown); color: var(--unknown-line); }
.source { color: var(--muted); font-size: 12px; }
details.prompt { margin: 4px 0; color: var(--muted); }
details.prompt pre { white-space: pre-wrap; margin: 4px 0; }
.step { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 12px;
        border-top: 1px dashed #eee; padding: 2px 0; }
.step .text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace;
              font-size: 13px; }
.step.injected .text { color: var(--muted); font-style: italic; }
.feedback { list-style: none; margin: 0; padding: 0; font-size: 13px; }
.feedback li { margin: 1px 0; }
.feedback li.fail { color: var(--fail-line); }
.feedback li.unknown { color: var(--unknown-line); }
.feedback li.pass { color: var(--pass-line); }
.feedback .fb { display: block; color: #3c4043; }
mark.v { background: none; color: inherit; }
mark.v[data-verdict="pass"] { background: var(--pass); }
mark.v[data-verdict="unknown"] { background: var(--unknown); }
mark.v[data-verdict="fail"] { background: var(--fail); text-decoration: underline wavy var(--fail-line); }
mark.v.off { background: none; text-decoration: none; }
.errors { margin: 12px 0; padding: 8px 12px; border: 1px solid var(--fail-line); border-radius: 6px;
          background: var(--fail); }
.errors li { font-family: ui-monospace, monospace; font-size: 13px; }
[hidden] { display: none !important; }
"""

_JS = """
(function () {
  "use strict";
  const outcome = document.getElementById("filter-outcome");
  const boxes = Array.from(document.querySelectorAll("input.filter-verifier"));
  const traces = Array.from(document.querySelectorAll("article.trace"));
  const shown = document.getElementById("shown");
  const words = (s) => (s || "").split(" ").filter(Boolean);
  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has("outcome")) outcome.value = params.get("outcome");
    if (params.has("verifiers")) {
      const wanted = new Set(params.get("verifiers").split(",").filter(Boolean));
      boxes.forEach((b) => { b.checked = wanted.has(b.value); });
    }
  }
  function toHash() {
    const params = new URLSearchParams();
    if (outcome.value !== "all") params.set("outcome", outcome.value);
    if (boxes.some((b) => !b.checked)) {
      params.set("verifiers", boxes.filter((b) => b.checked).map((b) => b.value).join(","));
    }
    const hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }
  function apply() {
    const on = new Set(boxes.filter((b) => b.checked).map((b) => b.value));
    let count = 0;
    for (const t of traces) {
      const failed = words(t.dataset.failed).some((v) => on.has(v));
      const unknown = words(t.dataset.unknown).some((v) => on.has(v));
      const state = failed ? "fail" : (unknown ? "unknown" : "pass");
      t.dataset.shownOutcome = state;
      const show = outcome.value === "all" || outcome.value === state;
      t.hidden = !show;
      if (show) count += 1;
    }
    document.querySelectorAll("mark.v").forEach((m) => { m.classList.toggle("off", !on.has(m.dataset.verifier)); });
    document.querySelectorAll(".feedback li").forEach((li) => { li.hidden = !on.has(li.dataset.verifier); });
    shown.textContent = count + " of " + traces.length + " traces shown";
    document.body.dataset.filtered = "1";
  }
  fromHash();
  apply();
  outcome.addEventListener("change", () => { apply(); toHash(); });
  boxes.forEach((b) => b.addEventListener("change", () => { apply(); toHash(); }));
  window.addEventListener("hashchange", () => { fromHash(); apply(); });
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _message(v: Verdict) -> str:
    if isinstance(v, Fail | Unknown):
        return v.message
    return v.note


def _outcome(report: TraceReport) -> str:
    if report.failures:
        return "fail"
    return "unknown" if any(isinstance(v, Unknown) for v in report.verdicts) else "pass"


def _mark_open(v: Verdict, index: int, cont: bool) -> str:
    span = v.span or Span(0, 0)
    title = f"{v.verifier}: {v.kind}" + (f": {_message(v)}" if _message(v) else "")
    return (f'<mark class="v" data-verdict="{_e(v.kind)}" data-verifier="{_e(v.verifier)}" '
            f'data-span="{span.start},{span.end}" data-v="{index}"' + (' data-cont="1"' if cont else "")
            + f' title="{_e(title)}">')


def _marked(text: str, step: Span, verdicts: Sequence[tuple[int, Verdict]]) -> str:
    """The step's text with every verdict span that overlaps it marked; crossing spans are closed and reopened
    (the reopened part carries ``data-cont``), so the markup always nests."""
    spans = []
    for index, v in verdicts:
        span = v.span
        if span is None:
            continue
        if span.start == span.end:
            if step.start <= span.start < step.end or span.start == step.end == len(text):
                spans.append((span.start, span.start, index, v))
        elif span.start < step.end and span.end > step.start:
            spans.append((max(span.start, step.start), min(span.end, step.end), index, v))
    cuts = sorted({step.start, step.end, *(s for s, _, _, _ in spans), *(e for _, e, _, _ in spans)})
    out: list[str] = []
    stack: list[tuple[int, int, int, Verdict]] = []
    opened: set[int] = set()
    for pos, nxt in zip(cuts, [*cuts[1:], None], strict=True):
        for point in (s for s in spans if s[0] == s[1] == pos):
            out.append(_mark_open(point[3], point[2], False) + "</mark>")
        if nxt is None:
            break
        want = sorted((s for s in spans if s[0] <= pos and s[1] >= nxt and s[0] < s[1]),
                      key=lambda s: (s[0], -s[1], s[2]))
        keep = 0
        while keep < len(stack) and keep < len(want) and stack[keep] is want[keep]:
            keep += 1
        out.extend("</mark>" for _ in stack[keep:])
        del stack[keep:]
        for s in want[keep:]:
            out.append(_mark_open(s[3], s[2], s[2] in opened))
            opened.add(s[2])
            stack.append(s)
        out.append(_e(text[pos:nxt]))
    out.extend("</mark>" for _ in stack)
    return "".join(out)


def _feedback(v: Verdict, index: int) -> str:
    span = v.span or Span(0, 0)
    head = f'<b>{_e(v.verifier)}</b> {_e(v.kind)}'
    if isinstance(v, Fail) and v.action is not None:
        head += f" ({_e(v.action.value)})"
    body = f": {_e(_message(v))}" if _message(v) else ""
    extra = ""
    if isinstance(v, Fail) and v.feedback is not None and v.feedback != v.message:
        extra = f'<span class="fb">feedback: {_e(v.feedback)}</span>'
    return (f'<li class="{_e(v.kind)}" data-verifier="{_e(v.verifier)}" data-verdict="{_e(v.kind)}" '
            f'data-v="{index}" data-span="{span.start},{span.end}">{head}{body}{extra}</li>')


def _trace(report: TraceReport, number: int) -> str:
    indexed = list(enumerate(report.verdicts))
    failed = sorted({v.verifier for v in report.failures})
    unknown = sorted({v.verifier for v in report.verdicts if isinstance(v, Unknown)})
    outcome = _outcome(report)
    parts = [f'<article class="trace" id="trace-{number}" data-id="{_e(report.id)}" data-outcome="{outcome}" '
             f'data-failed="{_e(" ".join(failed))}" data-unknown="{_e(" ".join(unknown))}">',
             f'<div class="head"><h2>{_e(report.id)}</h2>'
             f'<span class="badge outcome-{outcome}">{outcome}</span>']
    for key, value in report.labels.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        parts.append(f'<span class="badge label" data-label="{_e(key)}">{_e(key)}={_e(shown)}</span>')
    if report.path:
        where = report.path + (f":{report.line}" if report.line is not None else "")
        parts.append(f'<span class="source">{_e(where)}</span>')
    parts.append("</div>")
    first = report.first_violation
    if first is not None:
        parts.append(f'<p class="first">First violation: <b>{_e(first.verifier)}</b> at '
                     f'[{first.span.start if first.span else 0}, {first.span.end if first.span else 0}): '
                     f"{_e(first.message)}</p>")
    if report.prompt:
        parts.append(f'<details class="prompt"><summary>prompt</summary><pre>{_e(report.prompt)}</pre></details>')
    for step, injected in report.steps():
        starting = [(i, v) for i, v in indexed
                    if v.span is not None and (step.start <= v.span.start < step.end
                                               or v.span.start == step.end == len(report.text))]
        cls = "step injected" if injected else "step"
        parts.append(f'<div class="{cls}" data-span="{step.start},{step.end}">'
                     f'<div class="text">{_marked(report.text, step, indexed)}</div>'
                     f'<ul class="feedback">{"".join(_feedback(v, i) for i, v in starting)}</ul></div>')
    if report.errors:
        parts.append('<ul class="feedback">' + "".join(f'<li class="unknown">{_e(e)}</li>' for e in report.errors)
                     + "</ul>")
    parts.append("</article>")
    return "".join(parts)


def _totals(totals: ReplayTotals) -> str:
    data = totals.to_dict()
    cells = [("traces", data["traces"]), ("passed", data["passed"]), ("with violations", data["failed"]),
             ("read errors", data["read_errors"]), ("pass verdicts", data["verdicts"]["pass"]),
             ("fail verdicts", data["verdicts"]["fail"]), ("unknown verdicts", data["verdicts"]["unknown"]),
             ("tokens", data["tokens"])]
    if data["traces_per_s"] is not None:
        cells += [("traces/s", data["traces_per_s"]), ("tokens/s", data["tokens_per_s"])]
    out = ['<dl class="totals" id="totals">']
    for name, value in cells:
        key = name.replace(" ", "-").replace("/", "-per-")
        out.append(f'<div><dt>{_e(name)}</dt><dd data-total="{_e(key)}">{_e(value)}</dd></div>')
    out.append("</dl>")
    if data["by_verifier"]:
        out.append('<table class="breakdown" id="by-verifier"><tr><th>verifier</th><th>pass</th><th>fail</th>'
                   "<th>unknown</th></tr>")
        for name, counts in data["by_verifier"].items():
            out.append(f'<tr data-verifier="{_e(name)}"><td>{_e(name)}</td><td>{counts["pass"]}</td>'
                       f'<td>{counts["fail"]}</td><td>{counts["unknown"]}</td></tr>')
        out.append("</table>")
    if data["by_label"]:
        out.append('<table class="breakdown" id="by-label"><tr><th>label</th><th>value</th><th>traces</th>'
                   "<th>flagged</th></tr>")
        for key, values in data["by_label"].items():
            for value, counts in values.items():
                out.append(f"<tr><td>{_e(key)}</td><td>{_e(value)}</td><td>{counts.get('traces', 0)}</td>"
                           f"<td>{counts.get('flagged', 0)}</td></tr>")
        out.append("</table>")
    return "".join(out)


def render_html(results: Sequence[TraceReport | ReadFailure], totals: ReplayTotals | None = None, *,
                title: str = "interlock replay report") -> str:
    """The report as one HTML document."""
    if totals is None:
        totals = ReplayTotals()
        for r in results:
            totals.add(r)
    reports = [r for r in results if isinstance(r, TraceReport)]
    failures = [r for r in results if isinstance(r, ReadFailure)]
    names = sorted({v.verifier for r in reports for v in r.verdicts})
    head = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>")
    parts = [head, f"<header><h1>{_e(title)}</h1>{_totals(totals)}</header>",
             '<nav id="filters"><fieldset><legend>outcome</legend><select id="filter-outcome">'
             '<option value="all">all</option><option value="fail">with violations</option>'
             '<option value="pass">passed</option><option value="unknown">undecided</option></select></fieldset>'
             '<fieldset id="filter-verifiers"><legend>verifiers</legend>']
    for name in names:
        parts.append(f'<label><input type="checkbox" class="filter-verifier" value="{_e(name)}" checked> '
                     f"{_e(name)}</label>")
    parts.append('</fieldset><span id="shown"></span></nav><main>')
    if failures:
        parts.append('<section class="errors" id="read-errors"><b>Could not read:</b><ul>')
        parts.extend(f"<li>{_e(f.message)}</li>" for f in failures)
        parts.append("</ul></section>")
    parts.extend(_trace(r, i) for i, r in enumerate(reports))
    parts.append(f"</main><script>{_JS}</script></body></html>\n")
    return "".join(parts)


def write_html(path: str | os.PathLike[str], results: Sequence[TraceReport | ReadFailure],
               totals: ReplayTotals | None = None, *, title: str = "interlock replay report") -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    target.write_text(render_html(results, totals, title=title), encoding="utf-8")
    return target
