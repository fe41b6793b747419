"""The evaluator's outputs: a text table per dataset and an accuracy-vs-tokens plot (PNG, matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.evaluate import BudgetReport
from interlock.monitor.budgets.phased import phase_notes

__all__ = ["format_table", "write_plot"]

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


def format_table(report: BudgetReport) -> str:
    """The per-policy table, with a header saying what was replayed and how, and the footnotes it needs."""
    phased = any(r.get("thinking_traces") for r in report.policies)
    columns = (*_COLUMNS[:2], *_PHASE_COLUMNS, *_COLUMNS[2:]) if phased else _COLUMNS
    rows = [[_cell(r, key) for _, key, _ in columns] for r in report.policies]
    heads = [h for h, _, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "<" else c.rjust(w)
                         for c, w, (_, _, a) in zip(cells, widths, columns, strict=True)).rstrip()

    out = [f"{report.source or 'traces'}: {len(report.records)} traces, tokens by {report.tokenizer}, "
           f"streamed {report.chunk_tokens} tokens a chunk", line(heads), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    na = next((r for r in report.policies if r["not_applicable"]), None)
    out.append("saved: tokens not spent vs. the uncapped traces; lost: right answers the policy loses (false stops); "
               "loops stopped: traces ending in a loop, stopped before their end")
    out.append("* forced: the policy would force an answer there; offline the forced continuation is unavailable, "
               "so these stops are scored on the last answer the trace had stated")
    if phased:
        out.append(phase_notes(report.policies[0]))
    if na is not None:
        out.append(f"n/a: {na['policy']} on {na['not_applicable']} traces: {na['why_not']}")
    if report.read_errors:
        out.append(f"{len(report.read_errors)} records could not be read (first: {report.read_errors[0]})")
    return "\n".join(out)


def write_plot(reports: Sequence[BudgetReport], path: str | os.PathLike[str]) -> Path:
    """Accuracy against mean tokens per trace, one panel per dataset, one point per policy (sweeps joined)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BudgetError("--plot needs matplotlib: pip install 'interlock[budget]'") from None
    phased = [any(r.get("thinking_traces") for r in report.policies) for report in reports]
    fig, axes = plt.subplots(1 + any(phased), len(reports), figsize=(7 * len(reports), 5.5 * (1 + any(phased))),
                             squeeze=False)
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
                    label=r["policy"], alpha=0.8)
        for points in sweeps.values():
            for r in points:
                ax.annotate(r["policy"].split(":")[1], (r["mean_tokens"], 100 * r["accuracy"]), fontsize=7,
                            xytext=(3, -9), textcoords="offset points")
        ax.set_xlabel(f"mean tokens per trace ({report.tokenizer.split(' (')[0]})")
        ax.set_ylabel("accuracy of the answer at the stop (%)")
        ax.set_title(f"{Path(report.source).name or 'traces'} ({len(report.records)} traces)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    if any(phased):  # a second row: what each policy spends on the thinking alone
        for ax, report, has in zip(axes[1], reports, phased, strict=True):
            if has:
                _thinking_panel(ax, report)
            else:
                ax.set_axis_off()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


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
    ax.legend(fontsize=7, loc="lower right")
