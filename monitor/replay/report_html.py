"""A replay report a person can read at any size: one self-contained HTML file (inline CSS and JS, no network).

Totals at the top, with the flag rate by label as a small chart (for ``is_correct``: the verifier's precision and
recall against the labels). The traces travel as JSON inside the page (gzip-compressed when large) and the page
renders one page of 50 at a time, so 50,000 traces open as fast as 50. It opens on the traces with violations,
the most flagged first; each trace shows its id, labels and steps, the spans every verdict points at marked in the
text (``<mark data-verdict="fail" data-verifier="arithmetic" data-span="12,30">``) and each reason once per step
beside it (repeats counted); a reasoning model's thinking is shown dimmed under a "thinking" caption, its answer
under "answer" (``<div class="step thinking" data-phase="thinking">``). Filters by verifier and outcome, the sort
and the page live in the URL fragment (``report.html#outcome=fail&verifiers=arithmetic&page=2``) so a view can be
shared or opened directly.
All trace text is untrusted: the page inserts it as text, never as markup, and a Content-Security-Policy forbids
any network access. Lone surrogates become U+FFFD, and the page says how many.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interlock.monitor.phases import THINKING, phase_at
from interlock.monitor.replay.engine import ReadFailure, ReplayTotals, TraceReport
from interlock.monitor.replay.results import format_rate
from interlock.monitor.textout import scrub
from interlock.monitor.verdicts import Fail, Pass, Span, Unknown, Verdict

__all__ = ["render_html", "render_report", "write_html"]

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
.badge.outcome-unchecked { background: #f1f3f4; color: var(--muted); }
.trace[data-word="unchecked"] { border-left-color: var(--border); }
.source { color: var(--muted); font-size: 12px; }
details.prompt { margin: 4px 0; color: var(--muted); }
details.prompt pre { white-space: pre-wrap; margin: 4px 0; }
.step { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 12px;
        border-top: 1px dashed #eee; padding: 2px 0; }
.step .text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace;
              font-size: 13px; }
.step.injected .text { color: var(--muted); font-style: italic; }
.step.thinking .text { color: var(--muted); }
.phase { font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); margin-top: 6px; }
.feedback { list-style: none; margin: 0; padding: 0; font-size: 13px; }
.feedback li { margin: 1px 0; }
.feedback li.fail { color: var(--fail-line); }
.feedback li.unknown { color: var(--unknown-line); }
.feedback li.pass { color: var(--pass-line); }
.feedback .fb { display: block; color: #3c4043; }
mark.v { background: none; color: inherit; }
mark.v[data-verdict="pass"] { background: var(--pass); }
mark.v[data-verdict="pass"][data-checked="0"] { background: none; }
mark.v[data-verdict="unknown"] { background: var(--unknown); }
mark.v[data-verdict="fail"] { background: var(--fail); text-decoration: underline wavy var(--fail-line); }
mark.v.off { background: none; text-decoration: none; }
.errors { margin: 12px 0; padding: 8px 12px; border: 1px solid var(--fail-line); border-radius: 6px;
          background: var(--fail); }
.errors li { font-family: ui-monospace, monospace; font-size: 13px; }
[hidden] { display: none !important; }
.pager { display: flex; gap: 8px; align-items: center; }
.chart { margin-top: 12px; font-size: 13px; }
.chart svg { display: block; }
.chart .numbers { color: #3c4043; }
.note { color: var(--unknown-line); }
.feedback .count { color: var(--muted); }
"""

_JS = r"""
(function () {
  "use strict";
  const t0 = performance.now();
  const PAGE = 50;
  const outcome = document.getElementById("filter-outcome");
  const sortBy = document.getElementById("sort");
  const boxes = Array.from(document.querySelectorAll("input.filter-verifier"));
  const shown = document.getElementById("shown");
  const list = document.getElementById("traces");
  const pageInfo = document.getElementById("page-info");
  let data = null;
  let page = 0;
  let view = [];
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  async function load() {
    const node = document.getElementById("report-data");
    if (node.dataset.encoding !== "gzip+base64") return JSON.parse(node.textContent);
    const bin = atob(node.textContent.trim());
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }
  function on() { return new Set(boxes.filter((b) => b.checked).map((b) => b.value)); }
  function stateOf(r, enabled) {
    const S = data.strings;
    if (r.v.some((v) => v[0] === "fail" && enabled.has(S[v[1]]))) return "fail";
    if (r.v.some((v) => v[0] === "unknown" && enabled.has(S[v[1]]))) return "unknown";
    return "pass";
  }
  const RANK = { fail: 0, unknown: 1, pass: 2 };
  function compute() {
    const enabled = on();
    const rows = [];
    data.traces.forEach((r, n) => {
      const st = stateOf(r, enabled);
      if (outcome.value === "all" || outcome.value === st) rows.push([n, st]);
    });
    if (sortBy.value === "importance") {
      const fails = (n) => data.traces[n].v.filter((v) => v[0] === "fail" && enabled.has(data.strings[v[1]])).length;
      rows.sort((a, b) => RANK[a[1]] - RANK[b[1]] || fails(b[0]) - fails(a[0]) || a[0] - b[0]);
    }
    view = rows;
  }
  function marked(r, step, box, enabled) {
    const S = data.strings, text = r.t, lo = step[0], hi = step[1];
    const spans = [];
    r.v.forEach((v, i) => {
      const s = v[2], e = v[3];
      if (s === e) {
        if ((lo <= s && s < hi) || (s === hi && hi === text.length)) spans.push([s, s, i]);
      } else if (s < hi && e > lo) {
        spans.push([Math.max(s, lo), Math.min(e, hi), i]);
      }
    });
    const cuts = Array.from(new Set([lo, hi, ...spans.map((x) => x[0]), ...spans.map((x) => x[1])]))
      .sort((a, b) => a - b);
    const opened = new Set();
    let stack = [];
    const nodes = [box];
    const open = (sp, cont) => {
      const v = r.v[sp[2]];
      const m = el("mark", { class: "v" + (enabled.has(S[v[1]]) ? "" : " off"), "data-verdict": v[0],
        "data-verifier": S[v[1]], "data-span": v[2] + "," + v[3], "data-v": String(sp[2]),
        title: S[v[1]] + ": " + v[0] + (v[4] !== null ? ": " + S[v[4]] : "") });
      if (v[0] === "pass" && !v[7]) m.setAttribute("data-checked", "0");  // passed, but checked nothing: no green
      if (cont) m.setAttribute("data-cont", "1");
      return m;
    };
    for (let k = 0; k < cuts.length; k++) {
      const pos = cuts[k], nxt = k + 1 < cuts.length ? cuts[k + 1] : null;
      for (const p of spans) if (p[0] === pos && p[1] === pos) nodes[nodes.length - 1].appendChild(open(p, false));
      if (nxt === null) break;
      const want = spans.filter((p) => p[0] <= pos && p[1] >= nxt && p[0] < p[1])
        .sort((a, b) => a[0] - b[0] || b[1] - a[1] || a[2] - b[2]);
      let keep = 0;
      while (keep < stack.length && keep < want.length && stack[keep] === want[keep]) keep++;
      stack = stack.slice(0, keep);
      nodes.length = keep + 1;
      for (const p of want.slice(keep)) {
        const m = open(p, opened.has(p[2]));
        opened.add(p[2]);
        nodes[nodes.length - 1].appendChild(m);
        nodes.push(m);
        stack.push(p);
      }
      nodes[nodes.length - 1].appendChild(document.createTextNode(text.slice(pos, nxt)));
    }
  }
  function feedback(r, step, enabled) {
    const S = data.strings, ul = el("ul", { class: "feedback" });
    const seen = new Map();
    r.v.forEach((v, i) => {
      const s = v[2];
      if (!((step[0] <= s && s < step[1]) || (s === step[1] && s === r.t.length))) return;
      if (v[0] === "pass") return;  // the green mark says it; the list is for what needs reading
      const key = [v[0], v[1], v[4], v[5], v[6]].join("\u0000");
      if (seen.has(key)) { const li = seen.get(key); li.dataset.count = String(+li.dataset.count + 1);
        li.querySelector(".count").textContent = " \u00d7" + li.dataset.count; return; }
      const li = el("li", { class: v[0], "data-verifier": S[v[1]], "data-verdict": v[0], "data-v": String(i),
        "data-span": v[2] + "," + v[3], "data-count": "1" });
      li.hidden = !enabled.has(S[v[1]]);
      li.appendChild(el("b", {}, S[v[1]]));
      li.appendChild(document.createTextNode(" " + v[0] + (v[6] !== null ? " (" + S[v[6]] + ")" : "")
        + (v[4] !== null ? ": " + S[v[4]] : "")));
      li.appendChild(el("span", { class: "count" }, ""));
      if (v[5] !== null && v[5] !== v[4]) li.appendChild(el("span", { class: "fb" }, "feedback: " + S[v[5]]));
      seen.set(key, li);
      ul.appendChild(li);
    });
    return ul;
  }
  function article(n, st, enabled) {
    const r = data.traces[n], S = data.strings;
    const names = (kind) => Array.from(new Set(r.v.filter((v) => v[0] === kind).map((v) => S[v[1]]))).sort().join(" ");
    // the words `interlock run` uses for a run's outcome: verified only when a shown verifier checked something
    const checked = r.v.some((v) => v[0] === "pass" && v[7] && enabled.has(S[v[1]]));
    const word = st === "fail" ? "violation" : st === "unknown" ? "undecided" : checked ? "verified" : "unchecked";
    const a = el("article", { class: "trace", id: "trace-" + n, "data-id": r.i, "data-outcome": r.o,
      "data-shown-outcome": st, "data-word": word, "data-failed": names("fail"), "data-unknown": names("unknown") });
    const head = el("div", { class: "head" });
    head.appendChild(el("h2", {}, r.i));
    head.appendChild(el("span", { class: "badge outcome-" + (word === "unchecked" ? "unchecked" : st),
      "data-word": word }, word));
    for (const k of Object.keys(r.l || {})) {
      const val = r.l[k];
      const shownValue = typeof val === "string" ? val : JSON.stringify(val);
      head.appendChild(el("span", { class: "badge label", "data-label": k }, k + "=" + shownValue));
    }
    if (r.w) head.appendChild(el("span", { class: "source" }, r.w));
    a.appendChild(head);
    const firstFail = r.v.filter((v) => v[0] === "fail" && enabled.has(S[v[1]])).sort((x, y) => x[2] - y[2])[0];
    if (firstFail) {
      const p = el("p", { class: "first" }, "First violation: ");
      p.appendChild(el("b", {}, S[firstFail[1]]));
      p.appendChild(document.createTextNode(" at [" + firstFail[2] + ", " + firstFail[3] + "): " + S[firstFail[4]]));
      a.appendChild(p);
    }
    if (r.p !== null) {
      const d = el("details", { class: "prompt" });
      d.appendChild(el("summary", {}, "prompt"));
      d.appendChild(el("pre", {}, S[r.p]));
      a.appendChild(d);
    }
    let phase = null;
    for (const step of r.s) {
      const stepPhase = step[3] ? "thinking" : "answer";
      if (r.s.some((s) => s[3]) && stepPhase !== phase) {
        a.appendChild(el("div", { class: "phase" }, stepPhase));
        phase = stepPhase;
      }
      const cls = "step" + (step[2] ? " injected" : "") + (step[3] ? " thinking" : "");
      const div = el("div", { class: cls, "data-span": step[0] + "," + step[1], "data-phase": stepPhase });
      const box = el("div", { class: "text" });
      marked(r, step, box, enabled);
      div.appendChild(box);
      div.appendChild(feedback(r, step, enabled));
      a.appendChild(div);
    }
    if (r.e.length) {
      const ul = el("ul", { class: "feedback" });
      for (const e of r.e) ul.appendChild(el("li", { class: "unknown" }, e));
      a.appendChild(ul);
    }
    return a;
  }
  function render() {
    const enabled = on();
    const pages = Math.max(1, Math.ceil(view.length / PAGE));
    page = Math.min(Math.max(0, page), pages - 1);
    const frag = document.createDocumentFragment();
    for (const [n, st] of view.slice(page * PAGE, (page + 1) * PAGE)) frag.appendChild(article(n, st, enabled));
    list.replaceChildren(frag);
    shown.textContent = view.length + " of " + data.traces.length + " traces shown";
    pageInfo.textContent = "page " + (page + 1) + " of " + pages;
    document.getElementById("prev").disabled = page === 0;
    document.getElementById("next").disabled = page >= pages - 1;
  }
  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    outcome.value = params.get("outcome") || (data.flagged ? "fail" : "all");
    sortBy.value = params.get("sort") || "importance";
    page = Math.max(0, (parseInt(params.get("page") || "1", 10) || 1) - 1);
    const wanted = params.has("verifiers") ? new Set(params.get("verifiers").split(",").filter(Boolean)) : null;
    boxes.forEach((b) => { b.checked = wanted === null || wanted.has(b.value); });
  }
  function toHash() {
    const params = new URLSearchParams();
    params.set("outcome", outcome.value);
    if (sortBy.value !== "importance") params.set("sort", sortBy.value);
    if (page > 0) params.set("page", String(page + 1));
    if (boxes.some((b) => !b.checked)) {
      params.set("verifiers", boxes.filter((b) => b.checked).map((b) => b.value).join(","));
    }
    history.replaceState(null, "", "#" + params.toString());
  }
  function refresh(keepPage) { if (!keepPage) page = 0; compute(); render(); toHash(); }
  load().then((loaded) => {
    data = loaded;
    fromHash();
    compute();
    render();
    outcome.addEventListener("change", () => refresh(false));
    sortBy.addEventListener("change", () => refresh(false));
    boxes.forEach((b) => b.addEventListener("change", () => refresh(false)));
    document.getElementById("prev").addEventListener("click", () => { page -= 1; render(); toHash(); });
    document.getElementById("next").addEventListener("click", () => { page += 1; render(); toHash(); });
    window.addEventListener("hashchange", () => { fromHash(); compute(); render(); });
    document.body.dataset.renderMs = String(Math.round(performance.now() - t0));
    document.body.dataset.filtered = "1";
  }).catch((err) => { list.textContent = "could not read the report's data: " + err; });
})();
"""


_GZIP_OVER = 256 * 1024  # bytes of JSON above which the records travel gzip-compressed (base64) in the page


class _Strings:
    """Interns repeated strings (verifier names, messages, prompts shared by many traces) into one table."""

    def __init__(self) -> None:
        self.table: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, value: str | None) -> int | None:
        if value is None:
            return None
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.table)
            self.table.append(value)
        return found


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _message(v: Verdict) -> str:
    """The verdict's message without the verifier's name in front ("arithmetic: 16 - 7 is 9, not 8."): the page
    names the verifier beside it already."""
    text = v.message if isinstance(v, Fail | Unknown) else v.note
    prefix = f"{v.verifier}: "
    return text[len(prefix):] if v.verifier and text.startswith(prefix) else text


def _outcome(report: TraceReport) -> str:
    if report.failures:
        return "fail"
    return "unknown" if any(isinstance(v, Unknown) for v in report.verdicts) else "pass"


def _record(report: TraceReport, strings: _Strings) -> dict[str, Any]:
    """One trace, compact: verdicts as ``[kind, verifier, start, end, message, feedback, action, checked]``
    (strings by index into the page's string table; ``checked`` is 0 for a pass that checked nothing, such as
    "0 calculations checked", which the page does not colour as verified)."""
    verdicts = []
    for v in report.verdicts:
        span = v.span or Span(0, 0)
        feedback = v.feedback if isinstance(v, Fail) and v.feedback is not None else None
        action = v.action.value if isinstance(v, Fail) and v.action is not None else None
        checked = not isinstance(v, Pass) or v.checked
        verdicts.append([v.kind, strings(v.verifier), span.start, span.end, strings(_message(v) or None),
                         strings(feedback), strings(action), 1 if checked else 0])
    where = (report.path + (f":{report.line}" if report.line is not None else "")) if report.path else None
    return {"i": report.id, "o": _outcome(report), "l": dict(report.labels), "w": where,
            "p": strings(report.prompt or None), "t": report.text,
            "s": [[s.start, s.end, 1 if injected else 0, 1 if phase_at(report.phases, s.start) == THINKING else 0]
                  for s, injected in report.steps()],
            "v": verdicts, "e": list(report.errors)}


def _chart(totals: dict[str, Any]) -> str:
    """Flag rates by the value of each boolean label, as bars with their numbers; for ``is_correct``-like labels
    also the verifier's precision and recall, taking ``false`` as what should be flagged."""
    out = []
    for key, values in totals["by_label"].items():
        if not set(values) <= {"true", "false"}:
            continue
        rows = []
        for value in ("false", "true"):
            counts = values.get(value, {})
            n, flagged = counts.get("traces", 0), counts.get("flagged", 0)
            rows.append((value, n, flagged, flagged / n if n else 0.0))
        (_, n_false, tp, _), (_, _, fp, _) = rows
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / n_false if n_false else None
        bars = []
        for k, (value, n, flagged, rate) in enumerate(rows):
            y = 4 + k * 22
            colour = "#c62828" if value == "false" else "#2e7d32"
            bars.append(f'<text x="0" y="{y + 13}" font-size="12">{_e(key)}={value}</text>'
                        f'<rect x="110" y="{y}" width="200" height="16" fill="#f1f3f4"/>'
                        f'<rect x="110" y="{y}" width="{200 * rate:.1f}" height="16" fill="{colour}"/>'
                        f'<text x="318" y="{y + 13}" font-size="12">{flagged} of {n} flagged '
                        f"({100 * rate:.1f}%)</text>")
        p_text = f"precision {precision:.3f}" if precision is not None else "precision n/a"
        r_text = f"recall {recall:.3f}" if recall is not None else "recall n/a"
        p_attr = "" if precision is None else precision
        r_attr = "" if recall is None else recall
        out.append(f'<figure class="chart" data-label="{_e(key)}" data-precision="{p_attr}" data-recall="{r_attr}">'
                   f'<svg width="520" height="50" role="img" aria-label="flag rate by {_e(key)}">{"".join(bars)}</svg>'
                   f'<figcaption class="numbers">{_e(key)}=false is what should be flagged: {p_text} · {r_text}'
                   "</figcaption></figure>")
    return "".join(out)


def _totals(totals: ReplayTotals) -> str:
    data = totals.to_dict()
    cells = [("traces", data["traces"]), ("passed", data["passed"]), ("with violations", data["failed"]),
             ("undecided", data["undecided"]),
             ("read errors", data["read_errors"]), ("pass verdicts", data["verdicts"]["pass"]),
             ("fail verdicts", data["verdicts"]["fail"]), ("unknown verdicts", data["verdicts"]["unknown"]),
             ("tokens", data["tokens"])]
    if data["traces_per_s"] is not None:
        cells += [("traces/s", format_rate(data["traces_per_s"])), ("tokens/s", format_rate(data["tokens_per_s"]))]
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
    out.append(_chart(data))
    return "".join(out)


def _script_json(records: dict[str, Any]) -> tuple[str, str]:
    """The records for a ``<script type="application/json">``: plain when small, gzip+base64 when large."""
    text = json.dumps(records, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= _GZIP_OVER:
        return text.replace("<", "\\u003c"), "json"  # no "</script>" or "<!--" can end the element early
    packed = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
    return base64.b64encode(packed).decode("ascii"), "gzip+base64"


def render_html(results: Sequence[TraceReport | ReadFailure], totals: ReplayTotals | None = None, *,
                title: str = "interlock replay report") -> str:
    """The report as one HTML document; lone surrogates in any text become U+FFFD (see :func:`render_report`)."""
    return render_report(results, totals, title=title)[0]


def render_report(results: Sequence[TraceReport | ReadFailure], totals: ReplayTotals | None = None, *,
                  title: str = "interlock replay report") -> tuple[str, int]:
    """The report and how many lone surrogates were replaced with U+FFFD (the page says so too)."""
    if totals is None:
        totals = ReplayTotals()
        for r in results:
            totals.add(r)
    reports = [r for r in results if isinstance(r, TraceReport)]
    failures = [r for r in results if isinstance(r, ReadFailure)]
    names = sorted({v.verifier for r in reports for v in r.verdicts})
    strings = _Strings()
    traces = [_record(r, strings) for r in reports]
    payload = {"traces": traces, "strings": strings.table, "flagged": sum(1 for r in reports if r.failures)}
    body, encoding = _script_json(payload)
    head = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>")
    parts = [head, f"<header><h1>{_e(title)}</h1>{_totals(totals)}</header>",
             '<nav id="filters"><fieldset><legend>outcome</legend><select id="filter-outcome">'
             '<option value="all">all</option><option value="fail">with violations</option>'
             '<option value="pass">verified or unchecked</option><option value="unknown">undecided</option>'
             "</select></fieldset>"
             '<fieldset><legend>sort</legend><select id="sort"><option value="importance">violations first'
             '</option><option value="file">file order</option></select></fieldset>'
             '<fieldset id="filter-verifiers"><legend>verifiers</legend>']
    for name in names:
        parts.append(f'<label><input type="checkbox" class="filter-verifier" value="{_e(name)}" checked> '
                     f"{_e(name)}</label>")
    parts.append('</fieldset><span class="pager"><button id="prev" type="button">\u2190 previous</button>'
                 '<span id="page-info"></span><button id="next" type="button">next \u2192</button></span>'
                 '<span id="shown"></span></nav><main>')
    marker = "<!--surrogates-->"
    parts.append(marker)
    if failures:
        parts.append('<section class="errors" id="read-errors"><b>Could not read:</b><ul>')
        parts.extend(f"<li>{_e(f.message)}</li>" for f in failures)
        parts.append("</ul></section>")
    parts.append('<div id="traces"></div>')
    parts.append(f'</main><script type="application/json" id="report-data" data-encoding="{encoding}">{body}'
                 f"</script><script>{_JS}</script></body></html>\n")
    page, replaced = scrub("".join(parts))
    note = (f'<p class="note" id="surrogates">{replaced} lone surrogate(s) in the input were shown as U+FFFD.</p>'
            if replaced else "")
    return page.replace(marker, note, 1), replaced


def write_html(path: str | os.PathLike[str], results: Sequence[TraceReport | ReadFailure],
               totals: ReplayTotals | None = None, *, title: str = "interlock replay report") -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    target.write_text(render_html(results, totals, title=title), encoding="utf-8")
    return target
