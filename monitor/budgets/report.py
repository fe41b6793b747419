"""The evaluator's outputs: a text table per dataset and an accuracy-vs-tokens plot (PNG, matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.evaluate import BudgetReport
from interlock.monitor.budgets.phased import phase_notes

__all__ = ["format_notes", "format_table", "write_plot"]

_COLUMNS = (("policy", "policy", "<"), ("mean tok", "mean_tokens", ">"), ("saved", "saved_pct", ">"),
            ("right", "right", ">"), ("acc", "accuracy", ">"), ("lost", "false_stops", ">"),
            ("gained", "gained", ">"), ("loops stopped", "loops", ">"), ("forced*", "forced", ">"),
            ("n/a", "not_applicable", ">"))
# A dataset with thinkings: the tokens of each phase apart, after the mean of all tokens.
_PHASE_COLUMNS = (("think tok", "mean_thinking", ">"), ("answer tok", "mean_answer", ">"),
                  ("think saved", "thinking_saved_pct", ">"), ("cut†", "thinking_cut", ">"))


def _cell(row: dict[str, Any], key: str) -> str:
    if row["traces"] == 0 and key not in ("policy", "not_applicable"):
        return "-"
    if key in ("saved_pct", "thinking_saved_pct"):
        return f"{row[key]:.1f}%" if row[key] is not None else "-"
    if key == "accuracy":
        return f"{100 * row[key]:.1f}%"
    if key == "loops":
        return f"{row['runaways_stopped']}/{row['runaways']}"
    if key in ("mean_tokens", "mean_thinking", "mean_answer"):
        return f"{row[key]:.0f}"
    return str(row[key])


def format_table(report: BudgetReport, *, notes: bool = True) -> str:
    """The per-policy table, with a header saying what was replayed and how, and (``notes``) the footnotes it
    needs; with several tables, print them with ``notes=False`` and :func:`format_notes` once after them."""
    phased = any(r.get("thinking_traces") for r in report.policies)
    columns = (*_COLUMNS[:2], *_PHASE_COLUMNS, *_COLUMNS[2:]) if phased else _COLUMNS
    rows = [[_cell(r, key) for _, key, _ in columns] for r in report.policies]
    heads = [h for h, _, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "<" else c.rjust(w)
                         for c, w, (_, _, a) in zip(cells, widths, columns, strict=True)).rstrip()

    out = [f"{report.source or 'traces'}: {len(report.records) - len(report.record_errors)} traces, tokens by "
           f"{report.tokenizer}, "
           f"streamed {report.chunk_tokens} tokens a chunk", line(heads), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    probing = [r for r in report.policies if r.get("probes")]
    if probing:
        r = probing[0]
        out.append(f"probe policies: tokens include the probes' ({r['policy']}: {r['probes'] / r['traces']:.1f} "
                   f"probes, {r['probe_tokens'] / r['traces']:.1f} tokens a trace); a stop by the probes is scored "
                   "on the probe's answer (the answer the model gave when asked there)")
    if phased:
        out.append(phase_notes(report.policies[0]))
    if report.read_errors:
        out.append(f"{len(report.read_errors)} records could not be read (first: {report.read_errors[0]})")
    if report.record_errors:
        out.append(f"{len(report.record_errors)} records were left out (first: {report.record_errors[0]})")
    if notes:
        out.append(format_notes([report]))
    return "\n".join(out)


def format_notes(reports: Sequence[BudgetReport]) -> str:
    """The tables' footnotes, each once however many tables: what the columns mean, and why a policy was not
    applicable (with the traces of each file it was not applicable to)."""
    out = ["saved: tokens not spent vs. the uncapped traces; lost: right answers the policy loses (false stops); "
           "loops stopped: traces ending in a loop, stopped before their end",
           "* forced: the policy would force an answer there; offline the forced continuation is unavailable, "
           "so these stops are scored on the last answer the trace had stated"]
    why: dict[tuple[str, str], list[str]] = {}
    for report in reports:
        for row in report.policies:
            if row["not_applicable"]:
                where = f"{row['not_applicable']} traces" + (f" of {Path(report.source).name}" if report.source else "")
                why.setdefault((row["policy"], str(row["why_not"])), []).append(where)
    for (policy, reason), places in why.items():
        out.append(f"n/a: {policy} on {', '.join(places)}: {reason}")
    return "\n".join(out)


def write_plot(reports: Sequence[BudgetReport], path: str | os.PathLike[str]) -> Path:
    """Accuracy against mean tokens per trace, one panel per dataset, one point per policy (sweeps joined)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BudgetError("--plot needs matplotlib: pip install 'interlock[budget]'") from None
    fig = plot_figure(reports)
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_figure(reports: Sequence[BudgetReport]) -> Any:
    """The plot as a matplotlib figure (pyplot imported, a backend chosen: see :func:`write_plot`). Each panel's
    legend sits below it, never over a point, and the labels of sweep points are placed where they overlap no
    other label, no marker and no edge of the panel (the nearest free place around their point)."""
    import matplotlib.pyplot as plt

    phased = [any(r.get("thinking_traces") for r in report.policies) for report in reports]
    fig, axes = plt.subplots(1 + any(phased), len(reports), figsize=(7 * len(reports), 6.5 * (1 + any(phased))),
                             squeeze=False)
    panels = []
    for ax, report in zip(axes[0], reports, strict=True):
        rows = [r for r in report.policies if r["traces"]]
        sweeps: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            family = r["policy"].split(":")[0] if r["policy"].count(":") == 1 and "+" not in r["policy"] else None
            if family in ("cap", "pool", "think"):
                sweeps.setdefault(family, []).append(r)
        for family, points in sweeps.items():
            points.sort(key=lambda r: r["mean_tokens"])
            ax.plot([p["mean_tokens"] for p in points], [100 * p["accuracy"] for p in points], "-o",
                    label=f"{family} sweep", alpha=0.7)
        markers = "sDv^<>pPXhd*o"
        for i, r in enumerate(r for r in rows if not any(r in points for points in sweeps.values())):
            marker = "*" if r["policy"] == "uncapped" else markers[i % len(markers)]
            ax.plot([r["mean_tokens"]], [100 * r["accuracy"]], marker, markersize=10 if marker == "*" else 7,
                    label=r["policy"], alpha=0.8, zorder=3 if marker == "*" else 2)
        labels = [(r["mean_tokens"], 100 * r["accuracy"], r["policy"].replace(":", " "))
                  for points in sweeps.values() for r in points]
        ax.set_xlabel(f"mean tokens per trace ({report.tokenizer.split(' (')[0]})")
        ax.set_ylabel("accuracy of the answer at the stop (%)")
        ax.set_title(f"{Path(report.source).name or 'traces'} ({len(report.records)} traces)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.margins(0.08, 0.12)  # room for labels inside the panel
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
        panels.append((ax, labels))
    if any(phased):  # a second row: what each policy spends on the thinking alone
        for ax, report, has in zip(axes[1], reports, phased, strict=True):
            if has:
                _thinking_panel(ax, report)
            else:
                ax.set_axis_off()
    fig.tight_layout()
    for ax, labels in panels:
        _place_labels(fig, ax, labels)
    return fig


# where a label may go around its point, in points (nearest first): right, left, above, below, the diagonals, then
# the same farther out
_OFFSETS = [(dx * k, dy * k) for k in (1, 2, 3) for dx, dy in
            ((6, -3), (-6, -3), (0, 6), (0, -11), (6, 5), (-6, 5), (6, -11), (-6, -11))]


def _place_labels(fig: Any, ax: Any, labels: Sequence[tuple[float, float, str]]) -> None:
    """Annotate each (x, y, text) at the first offset where the text overlaps nothing placed yet (labels,
    markers) and stays inside the panel; when every offset overlaps, the one that overlaps least."""
    renderer = fig.canvas.get_renderer()
    panel = ax.get_window_extent(renderer)
    taken = []  # display-space boxes of the markers and of the labels placed so far
    for line in ax.get_lines():
        for x, y in zip(*line.get_data(), strict=True):
            px, py = ax.transData.transform((x, y))
            half = line.get_markersize() * fig.dpi / 72 / 2 + 1
            taken.append((px - half, py - half, px + half, py + half))
    for x, y, text in labels:
        best: tuple[float, Any] | None = None
        for dx, dy in _OFFSETS:
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                               ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center")
            box = note.get_window_extent(renderer)
            edges = (box.x0, box.y0, box.x1, box.y1)
            cost = sum(_overlap(edges, other) for other in taken)
            if box.x0 < panel.x0 or box.x1 > panel.x1 or box.y0 < panel.y0 or box.y1 > panel.y1:
                cost += box.width * box.height  # outside the panel: as bad as covering something of its size
            if best is not None and cost >= best[0]:
                note.remove()
                continue
            if best is not None:
                best[1].remove()
            best = (cost, note)
            if cost == 0:
                break
        if best is not None:
            box = best[1].get_window_extent(renderer)
            taken.append((box.x0, box.y0, box.x1, box.y1))


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """The area two display-space boxes (x0, y0, x1, y1) share."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _thinking_panel(ax: Any, report: BudgetReport) -> None:
    """Accuracy against mean *thinking* tokens per trace: what each policy spends on the thinking alone."""
    rows = [r for r in report.policies if r["traces"] and r.get("mean_thinking") is not None]
    sweep = sorted((r for r in rows if r["policy"].startswith("think:") and r["policy"].count(":") == 1
                    and "+" not in r["policy"]), key=lambda r: r["mean_thinking"])
    if sweep:
        ax.plot([r["mean_thinking"] for r in sweep], [100 * r["accuracy"] for r in sweep], "-o",
                label="think sweep (cut: answer scored offline)", alpha=0.7)
        for r in sweep:
            ax.annotate(r["policy"].split(":")[1], (r["mean_thinking"], 100 * r["accuracy"]), fontsize=7,
                        xytext=(3, -9), textcoords="offset points")
    markers = "sDv^<>pPXhd*o"
    for i, r in enumerate(r for r in rows if r not in sweep):
        marker = "*" if r["policy"] == "uncapped" else markers[i % len(markers)]
        ax.plot([r["mean_thinking"]], [100 * r["accuracy"]], marker, markersize=10 if marker == "*" else 7,
                label=r["policy"] + (" (cut: answer scored offline)" if r.get("thinking_cut") else ""), alpha=0.8)
    thinking = rows[0]["thinking_traces"] if rows else 0
    ax.set_xlabel(f"mean thinking tokens per trace ({report.tokenizer.split(' (')[0]})")
    ax.set_ylabel("accuracy of the answer at the stop (%)")
    ax.set_title(f"{Path(report.source).name or 'traces'}: the thinking ({thinking} of {len(report.records)} traces "
                 "have one)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
