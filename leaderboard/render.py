"""Leaderboard pages: one ``Summary`` rendered as GitHub markdown and as a self-contained HTML file.

Rendering only formats and draws what the summary holds; every number comes from it, so tables
and plots cannot disagree. Optimizer and problem names are user input and are escaped everywhere.
"""

from __future__ import annotations

import html
import math
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from leaderboard.aggregate import ROUND_METRICS
from leaderboard.stats import ALPHA, BETTER, NO_EVIDENCE, REFERENCE, WORSE

COLUMNS = ("Optimizer", "Instances", "Runs", "Budget", "Repeats", "Median final regret [IQR]",
           "95% CI of the median", "Median evaluations to solve", "Runs solved",
           "Mean AUC [95% CI]", "Regret vs reference", "AUC vs reference")
NUMERIC = (False, True, True, True, False, True, True, True, True, True, False, False)
# How each counting rule reads in a table: whether a repeated query costs an evaluation.
COUNT_LABELS = {"distinct": "free", "all": "charged"}

# Tableau 10 (matplotlib's default cycle): ten hues that stay distinct as thin lines on white.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

# Characters that change the meaning of inline GitHub markdown, table cells and headings included.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~$])")


# How ``ranked`` orders a problem's entries, in words: its first row is the problem's best entry.
BEST_RULE = "lowest median final regret; ties go to the lower mean AUC, then the name"


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The table in display order: by problem, then by ``BEST_RULE``."""
    return table.sort_values(["problem", "median_regret", "auc", "optimizer"], kind="stable")


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def p_text(p: float) -> str:
    """A p-value as every table and note writes it, so that none reads more precise than another:
    two significant digits, in scientific notation below 0.001 (``p=0.0042``, ``p=6.1×10⁻⁴``;
    no hyphen, where a narrow cell would break the line)."""
    if p >= 1e-3:
        return f"p={p:#.2g}"
    mantissa, exponent = f"{p:.1e}".split("e")
    return f"p={mantissa}×10{str(int(exponent)).translate(SUPERSCRIPT)}"


def table_cells(row: pd.Series) -> tuple[str, ...]:
    """One row's cells as plain (unescaped) text, in ``COLUMNS`` order, shared by both formats."""
    evals = row["median_evals_to_solve"]
    return (
        str(row["optimizer"]),
        str(int(row["instances"])),
        str(int(row["seeds"])),
        f"{int(row['budget']):,}",
        COUNT_LABELS.get(row["count"], str(row["count"])),
        f"{row['median_regret']:.3f} [{row['q25_regret']:.3f}, {row['q75_regret']:.3f}]",
        _interval(row["regret_ci_low"], row["regret_ci_high"]),
        "—" if math.isinf(evals) else f"{evals:,.0f}",
        f"{round(row['fraction_solved'] * row['seeds'])}/{int(row['seeds'])}",
        f"{row['auc']:.3f} {_interval(row['auc_ci_low'], row['auc_ci_high'])}",
        verdict_cell(row, "regret"),
        verdict_cell(row, "auc"),
    )


def _interval(low: float, high: float) -> str:
    return "—" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"


def verdict_cell(row: pd.Series, metric: str) -> str:
    """The verdict on ``metric`` against the reference with its Holm-adjusted p-value (of the
    direction that was tested as more likely); "—" where the reference has no runs on the same
    instances."""
    verdict = row[f"verdict_{metric}"]
    if verdict in ("", REFERENCE):
        return verdict or "—"
    return f"{verdict} ({verdict_p(row, metric)})"


def verdict_p(row: pd.Series, metric: str) -> str:
    """The Holm-adjusted p-value a verdict on ``metric`` rests on, as text."""
    return p_text(min(row[f"p_{metric}_lower"], row[f"p_{metric}_higher"]))


def verdict_note(summary) -> str:
    """How to read the verdict columns (plain text, shared by both formats)."""
    return (f"Verdicts compare each optimizer with {summary.reference} on the same problem: "
            "one-sided Mann-Whitney U tests of the runs' final regrets and AUCs (lower is "
            "better), Holm-adjusted over every test on the page, at alpha = "
            f"{ALPHA}. \"no evidence\" is not a tie: with few runs, real differences go "
            "undetected. The 95% CIs are percentile bootstrap intervals over runs. A problem "
            "pools every instance of its parameters (a family) and every run seed on each; "
            f"\"—\" means {summary.reference} was not run on the same instances.")


def regret_verdict_words(row: pd.Series, reference: str) -> str:
    """A row's verdict on final regret against ``reference`` as a phrase (plain text)."""
    verdict = row["verdict_regret"]
    if verdict == REFERENCE:
        return "the reference"
    if verdict == "":
        return f"not compared with {reference}, which was not run on the same instances"
    words = {BETTER: f"better than {reference} in final regret",
             WORSE: f"worse than {reference} in final regret",
             NO_EVIDENCE: f"no evidence of a difference from {reference} in final regret"}
    return f"{words[verdict]} ({verdict_p(row, 'regret')})"


def headline(summary) -> str:
    """The page in one line (plain text): each problem's best entry with its verdict against the
    reference, then the entry first across problems with what the ranking's test says of it."""
    best = [f"{row['optimizer']} on {problem}, {regret_verdict_words(row, summary.reference)}"
            for problem, rows in ranked(summary.table).groupby("problem", sort=True)
            for _, row in rows.head(1).iterrows()]
    text = f"Best on each problem ({BEST_RULE}): {'; '.join(best)}."
    if summary.table["problem"].nunique() < 2 or summary.across.empty:
        return text
    ordered = across_order(summary.across)
    first = ordered.iloc[0]
    if not math.isnan(first["average_rank"]):
        leaders = list(ordered[ordered["average_rank"] == first["average_rank"]]["optimizer"])
        has = "has" if len(leaders) == 1 else "share"
        return text + (f" Across problems, {' and '.join(leaders)} {has} the best average rank "
                       f"({first['average_rank']:.2f} among the {summary.ranking['entries']} "
                       f"optimizers run on every problem; {ranking_status(summary.ranking)}).")
    if not math.isnan(first["normalized_score"]):
        return text + (f" Across problems, {first['optimizer']} has the best normalized score "
                       f"({first['normalized_score']:.3f}; no optimizer was run on every "
                       "problem, so none is ranked).")
    return text


def about(summary, problem: str) -> str:
    """The instances a problem's rows pool, in words (plain text)."""
    rows = summary.problems[summary.problems["problem"] == problem]
    return f"Instances: {rows['about'].iloc[0]}." if len(rows) else ""


def colors(summary) -> dict[str, str]:
    """One color per optimizer, the same in every plot: sorted names cycle through ``PALETTE``."""
    names = sorted(set(summary.table["optimizer"]) | set(summary.curves["optimizer"])
                   | set(summary.ecdf["optimizer"]))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


# ----------------------------------------------------------------------------------------------
# Markdown


def escape_markdown(text: str) -> str:
    """``text`` as literal inline markdown: punctuation backslash-escaped, HTML as entities."""
    text = MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
    return html.escape(text, quote=False)


def markdown_table(columns, numeric, rows) -> list[str]:
    """A GitHub table of plain-text cells: numeric columns right-aligned and written as they are,
    text columns escaped (names are user input)."""
    return (["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if number else "---" for number in numeric) + "|"]
            + ["| " + " | ".join(cell if number else escape_markdown(cell)
                                 for cell, number in zip(row, numeric)) + " |" for row in rows])


def render_markdown(summary) -> str:
    """The headline, then a heading and a GitHub table per problem, best optimizer first."""
    lines = ["# Leaderboard", "", escape_markdown(headline(summary)), "",
             escape_markdown(verdict_note(summary)), ""]
    for problem, rows in ranked(summary.table).groupby("problem", sort=True):
        lines += [f"## {escape_markdown(problem)}", "", escape_markdown(about(summary, problem)),
                  ""]
        lines += markdown_table(COLUMNS, NUMERIC, [table_cells(row) for _, row in rows.iterrows()])
        lines += ["", escape_markdown(VERIFIED_NOTE), ""]
        lines += markdown_table(VERIFIED_COLUMNS, VERIFIED_NUMERIC, verified_rows(rows))
        lines.append("")
        headers, grid = fixed_target_grid(summary.fixed_target, problem)
        if grid:
            lines += [escape_markdown(FIXED_TARGET_NOTE), ""]
            lines += markdown_table(["Optimizer", *headers], [False] + [True] * len(headers), grid)
            lines.append("")
    rows = across_rows(summary)
    if rows:
        lines += ["## Across problems", "", escape_markdown(ranking_note(summary)), ""]
        lines += markdown_table(ACROSS_COLUMNS, ACROSS_NUMERIC, rows)
        lines += ["", escape_markdown(ranking_result(summary)), ""]
    lines += ["## Configurations", ""]
    lines += markdown_table(("Entry", "Optimizer", "Budget", "Repeats", "Parameters"),
                            (False, False, True, False, False),
                            [(row.entry, row.optimizer, f"{row.budget:,}",
                              COUNT_LABELS.get(row.count, row.count), row.params)
                             for row in summary.configurations.itertuples()])
    lines += ["", f"_Generated {escape_markdown(summary.generated)}._"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# SVG plots


@dataclass(frozen=True)
class Series:
    """One optimizer's curve: y at each evaluation count, and an optional 25-75% band."""

    name: str
    color: str
    evaluations: np.ndarray
    y: np.ndarray
    q25: np.ndarray | None = None
    q75: np.ndarray | None = None


# Plot geometry in SVG user units: the plot area, its margins, and the legend right of it; about
# as wide as a card, so that stretched to the card's width (CSS) text keeps its size. Data lie
# ``PAD`` inside the frame, so that no line at an axis' end hides on the frame.
LEFT, TOP, PLOT_WIDTH, PLOT_HEIGHT, BOTTOM, LEGEND_WIDTH = 64, 14, 860, 300, 50, 236
PAD, LEGEND_CHARS, LEGEND_STEP = 8, 30, 20


def decades(evaluations: list[np.ndarray]) -> tuple[int, int]:
    """The powers of ten bracketing every evaluation count (at least one decade apart)."""
    values = np.concatenate(evaluations) if evaluations else np.array([1.0])
    low = math.floor(math.log10(max(values.min(), 1)))
    return low, max(math.ceil(math.log10(max(values.max(), 1))), low + 1)


def x_position(evaluations, low: int, high: int) -> np.ndarray:
    """Horizontal position of evaluation counts on a log10 axis spanning ``10**low..10**high``."""
    fraction = (np.log10(np.asarray(evaluations, float)) - low) / (high - low)
    return LEFT + PAD + fraction * (PLOT_WIDTH - 2 * PAD)


def y_position(values) -> np.ndarray:
    """Vertical position of values on a linear axis from 0 (bottom) to 1, clipped to it."""
    return TOP + PAD + (1 - np.clip(np.asarray(values, float), 0, 1)) * (PLOT_HEIGHT - 2 * PAD)


def steps(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corners of a step function known at ``xs``: each value held until the next x, then the
    jump (horizontal, then vertical), as a best-so-far curve read at grid points is."""
    return np.repeat(xs, 2)[1:], np.repeat(ys, 2)[:-1]


def points(xs: np.ndarray, ys: np.ndarray, low: int, high: int) -> str:
    """SVG ``points`` for data on the plot's axes (``x_position``, ``y_position``)."""
    return " ".join(f"{x:.2f},{y:.2f}"
                    for x, y in zip(x_position(xs, low, high), y_position(ys)))


def line_band_plot(series: list[Series], css_class: str, label: str, y_label: str,
                   data: dict[str, str] | None = None) -> str:
    """An inline SVG of median lines over translucent bands against oracle evaluations, both
    drawn as step functions (``steps``): best-so-far regret and targets reached change only
    with evaluations.

    The x axis is log10 with a tick per decade, y is linear from 0 to 1; ``data`` becomes
    ``data-*`` attributes of the ``<svg>``, whose class is ``css_class``.
    """
    low, high = decades([s.evaluations for s in series])
    bottom, right = TOP + PLOT_HEIGHT, LEFT + PLOT_WIDTH
    width = right + LEGEND_WIDTH
    height = max(bottom + BOTTOM, TOP + LEGEND_STEP * len(series))
    attributes = "".join(f' data-{key}="{html.escape(value)}"'
                         for key, value in (data or {}).items())
    parts = [f'<svg class="{css_class}"{attributes} viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{html.escape(label)}">',
             f"<title>{html.escape(label)}</title>"]
    for k in range(low, high + 1):
        x = x_position(10 ** k, low, high)
        parts.append(f'<line class="x-tick" data-evaluations="{10 ** k}" x1="{x:.2f}" y1="{TOP}" '
                     f'x2="{x:.2f}" y2="{bottom + 5}"/><text class="tick-label" x="{x:.2f}" '
                     f'y="{bottom + 19}" text-anchor="middle">{10 ** k:,}</text>')
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        y = y_position(fraction)
        parts.append(f'<line class="y-tick" data-value="{fraction}" x1="{LEFT - 5}" y1="{y:.2f}" '
                     f'x2="{right}" y2="{y:.2f}"/><text class="tick-label" x="{LEFT - 9}" '
                     f'y="{y + 4:.2f}" text-anchor="end">{fraction:g}</text>')
    parts.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" '
                 f'height="{PLOT_HEIGHT}"/><text class="axis-label" x="{LEFT + PLOT_WIDTH / 2}" '
                 f'y="{bottom + 40}" text-anchor="middle">oracle evaluations</text>'
                 f'<text class="axis-label" transform="translate(18 {TOP + PLOT_HEIGHT / 2}) '
                 f'rotate(-90)" text-anchor="middle">{html.escape(y_label)}</text>')
    for i, s in enumerate(series):
        name = html.escape(s.name)
        parts.append(f'<g class="series" data-optimizer="{name}"><title>{name}</title>')
        if s.q25 is not None and s.q75 is not None:
            (x, upper), (_, lower) = steps(s.evaluations, s.q75), steps(s.evaluations, s.q25)
            band = points(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]]),
                          low, high)
            parts.append(f'<polygon class="band" points="{band}" fill="{s.color}"/>')
        line = points(*steps(s.evaluations, s.y), low, high)
        parts.append(f'<polyline class="median" points="{line}" stroke="{s.color}"/></g>')
        shown = s.name if len(s.name) <= LEGEND_CHARS else s.name[:LEGEND_CHARS - 1] + "…"
        y = TOP + 8 + LEGEND_STEP * i
        parts.append(f'<g class="legend-entry" data-optimizer="{name}"><title>{name}</title>'
                     f'<line x1="{right + 14}" y1="{y}" x2="{right + 36}" y2="{y}" '
                     f'stroke="{s.color}"/><text x="{right + 42}" y="{y + 4}">'
                     f"{html.escape(shown)}</text></g>")
    parts.append("</svg>")
    return "\n".join(parts)


def cliques(ranks: list[float], difference: float) -> list[tuple[int, int]]:
    """Maximal runs ``(first, last)`` (indices into ``ranks``, sorted ascending) of two or more
    entries whose average ranks differ by less than ``difference``: the groups a critical
    difference diagram joins with a bar."""
    spans = []
    for first in range(len(ranks)):
        last = first
        while last + 1 < len(ranks) and ranks[last + 1] - ranks[first] < difference:
            last += 1
        if last > first and not (spans and spans[-1][1] >= last):
            spans.append((first, last))
    return spans


def cd_diagram(across: pd.DataFrame, difference: float) -> str:
    """A critical difference diagram (Demsar 2006): the entries at their average ranks on an axis
    from 1 (best, left) to k, the critical difference above it to the same scale (the axis' room
    grows to hold it), and a bar under each group of entries whose ranks differ by less than it
    (no significant difference). Draw it only where Friedman's test rejects."""
    ordered = across_order(across).dropna(subset=["average_rank"])
    names, ranks = list(ordered["optimizer"]), list(ordered["average_rank"])
    k = len(names)
    width, left, right, axis_y, step = 720, 190, 530, 46, 22
    half = (k + 1) // 2
    bars = cliques(ranks, difference)
    height = axis_y + 40 + step * max(half, k - half) + 14 * len(bars)

    def x(rank: float) -> float:
        return left + (rank - 1) / max(k - 1, difference) * (right - left)

    parts = [f'<svg class="cd-diagram" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="Critical difference diagram">',
             "<title>Critical difference diagram of average ranks</title>",
             f'<line class="frame" x1="{left}" y1="{axis_y}" x2="{x(k):.2f}" y2="{axis_y}"/>']
    for rank in range(1, k + 1):
        parts.append(f'<line class="frame" x1="{x(rank):.2f}" y1="{axis_y - 5}" '
                     f'x2="{x(rank):.2f}" y2="{axis_y}"/><text class="tick-label" '
                     f'x="{x(rank):.2f}" y="{axis_y - 9}" text-anchor="middle">{rank}</text>')
    parts.append(f'<g class="critical-difference"><line class="median" stroke="#1d2430" '
                 f'x1="{left}" y1="14" x2="{x(1 + difference):.2f}" y2="14"/><text '
                 f'class="tick-label" x="{left - 8}" y="18" text-anchor="end">'
                 f"CD = {difference:.2f}</text></g>")
    for i, (first, last) in enumerate(bars):
        y = axis_y + 10 + 14 * i
        parts.append(f'<line class="clique" stroke="#1d2430" stroke-width="4" '
                     f'x1="{x(ranks[first]) - 3:.2f}" y1="{y}" x2="{x(ranks[last]) + 3:.2f}" '
                     f'y2="{y}"/>')
    label_top = axis_y + 22 + 14 * len(bars)
    for i, (name, rank) in enumerate(zip(names, ranks)):
        on_left = i < half
        row = i if on_left else k - 1 - i
        y = label_top + step * row
        end = left - 10 if on_left else right + 10
        escaped = html.escape(name)
        parts.append(f'<g class="cd-entry" data-optimizer="{escaped}" data-rank="{rank:.3f}">'
                     f"<title>{escaped}: average rank {rank:.2f}</title>"
                     f'<polyline class="frame" points="{x(rank):.2f},{axis_y} {x(rank):.2f},{y} '
                     f'{end},{y}"/><text x="{end + (-4 if on_left else 4)}" y="{y + 4}" '
                     f'text-anchor="{"end" if on_left else "start"}">{escaped} '
                     f"({rank:.2f})</text></g>")
    parts.append("</svg>")
    return "\n".join(parts)


def across_order(across: pd.DataFrame) -> pd.DataFrame:
    """The across-problems entries, best average rank first, then best normalized score, name."""
    return across.sort_values(["average_rank", "normalized_score", "optimizer"],
                              na_position="last", kind="stable")


def across_rows(summary) -> list[tuple[str, ...]]:
    """The across-problems table as plain text, in ``across_order``: entry, problems (scored of
    run), runs (over all its problems), normalized score [95% CI], average rank."""
    across = summary.across
    if across.empty:
        return []
    ordered = across_order(across)
    return [(str(row.optimizer), f"{int(row.scored_problems)} of {int(row.problems)}",
             f"{int(row.runs):,}", "—" if math.isnan(row.normalized_score) else
             f"{row.normalized_score:.3f} {_interval(row.score_ci_low, row.score_ci_high)}",
             "—" if math.isnan(row.average_rank) else f"{row.average_rank:.2f}")
            for row in ordered.itertuples()]


ACROSS_COLUMNS = ("Optimizer", "Problems scored", "Runs", "Normalized score [95% CI]",
                  "Average rank")
ACROSS_NUMERIC = (False, True, True, True, True)


def ranking_note(summary) -> str:
    """What the across-problems numbers mean (plain text); ``ranking_result`` says what the
    ranking's test found."""
    return ("Normalized score: an optimizer's median final regret over random search's on the "
            "same problem (0 is the optimum, 1 is random search), averaged over the problems "
            "where random search ran and did not solve at the median; the interval resamples "
            "each problem's runs. Average rank: by median final regret, over the problems, "
            "among the optimizers run on every problem.")


def friedman_rejects(ranking: dict) -> bool:
    """Whether Friedman's test ran and rejected equal ranks at the page's alpha: only then may
    Nemenyi's post-hoc comparison, the critical difference diagram, be drawn (Demsar 2006)."""
    p = ranking.get("friedman_p", math.nan)
    return not math.isnan(p) and p < ALPHA


def ranking_status(ranking: dict) -> str:
    """What Friedman's test says of the average ranks, as a clause (plain text)."""
    p = ranking.get("friedman_p", math.nan)
    if math.isnan(p):
        return "too few optimizers or problems for Friedman's test, so the ranks are not tested"
    if not friedman_rejects(ranking):
        return f"Friedman's test finds no significant difference between them, {p_text(p)}"
    return (f"Friedman's test finds they differ, {p_text(p)}; Nemenyi's test tells apart only "
            f"ranks at least {ranking['critical_difference']:.2f} apart")


def ranking_result(summary) -> str:
    """One line on the ranking's test (plain text, both formats): why there is no critical
    difference diagram, or which average ranks Nemenyi's test cannot tell apart."""
    ranking = summary.ranking
    entries, problems = ranking.get("entries", 0), ranking.get("problems", 0)
    p = ranking.get("friedman_p", math.nan)
    if math.isnan(p):
        return ("No critical difference diagram: Friedman's test needs at least 3 optimizers "
                f"run on every problem and at least 2 problems; this page has {entries} and "
                f"{problems}, so the ranks are not tested.")
    if not friedman_rejects(ranking):
        return (f"No critical difference diagram: Friedman's test over {problems} problems and "
                f"{entries} optimizers does not reject that they all rank alike ({p_text(p)}, "
                f"alpha = {ALPHA}), so no difference of average ranks is significant.")
    ordered = across_order(summary.across).dropna(subset=["average_rank"])
    names, ranks = list(ordered["optimizer"]), list(ordered["average_rank"])
    difference = ranking["critical_difference"]
    groups = "; ".join(", ".join(names[first:last + 1])
                       for first, last in cliques(ranks, difference)) or "none"
    return (f"Friedman's test over {problems} problems and {entries} optimizers rejects that "
            f"they all rank alike ({p_text(p)}, alpha = {ALPHA}). Average ranks closer than "
            f"Nemenyi's critical difference, CD = {difference:.2f}, are not significantly "
            f"different; groups within it: {groups}.")


def series_by_optimizer(frame: pd.DataFrame, palette: dict[str, str], y: str,
                        band: tuple[str, str] | None = None) -> list[Series]:
    """Per optimizer (sorted), the ``y`` and ``band`` columns of ``frame`` by evaluations."""
    series = []
    for name, rows in frame.sort_values("evaluations").groupby("optimizer", sort=True):
        q25, q75 = (rows[band[0]].to_numpy(), rows[band[1]].to_numpy()) if band else (None, None)
        series.append(Series(str(name), palette[name], rows["evaluations"].to_numpy(),
                             rows[y].to_numpy(), q25, q75))
    return series


# ----------------------------------------------------------------------------------------------
# HTML

STYLE = """
:root { color-scheme: light; --best: #e8f5e8; }
body { margin: 0; background: #f6f7f9; color: #1d2430;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; overflow-wrap: anywhere; }
p.lede { margin: 0 0 24px; color: #4a5568; }
p.headline { margin: 0 0 12px; font-size: 16px; font-weight: 500; }
ul.legend { margin: 0 0 20px; padding: 0; list-style: none; color: #4a5568; font-size: 14px; }
ul.legend li { margin: 2px 0; }
.swatch { display: inline-block; box-sizing: border-box; width: 26px; height: 12px;
          margin-right: 8px; vertical-align: -1px; }
.swatch.best { background: var(--best); border: 1px solid #cfe3cf; }
.swatch.line { height: 0; border-top: 2px solid #4a5568; vertical-align: 4px; }
.swatch.band { background: rgba(74, 85, 104, 0.16); }
.swatch.clique { height: 0; border-top: 4px solid #1d2430; vertical-align: 3px; }
p.no-diagram, p.ranking-result { margin: 0 0 12px; }
p.note { margin: 16px 0 6px; color: #4a5568; font-size: 14px; }
section { background: #fff; border: 1px solid #e1e5eb; border-radius: 8px;
          padding: 18px 20px; margin-bottom: 22px; overflow-x: auto; }
table.leaderboard, table.fixed-target, table.across, table.verified {
    border-collapse: collapse; width: 100%;
    margin-bottom: 16px; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 7px; border-bottom: 1px solid #e6e9ee; text-align: left; }
th { font-size: 13px; font-weight: 600; color: #4a5568; border-bottom: 2px solid #cfd6df; }
td.optimizer { overflow-wrap: anywhere; font-weight: 500; }
th.num, td.num { text-align: right; }
td.num { white-space: nowrap; }
table.leaderboard tbody tr:first-child td { background: var(--best); }
svg { display: block; max-width: 100%; height: auto; font-size: 12px; }
svg.regret-curve, svg.ecdf { width: 100%; }
svg .x-tick, svg .y-tick { stroke: #e3e7ec; }
svg .frame { fill: none; stroke: #9aa5b1; }
svg .tick-label { fill: #4a5568; }
svg .axis-label { fill: #1d2430; font-size: 13px; }
svg .band { fill-opacity: 0.16; stroke: none; }
svg .median { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg .legend-entry line { stroke-width: 3; }
svg .legend-entry text { fill: #1d2430; }
footer { color: #6b7685; font-size: 13px; }
"""


NUMBER_CLASS = ' class="num"'


def html_rows_table(css_class: str, columns, numeric, rows, problem: str | None = None) -> str:
    """An HTML table of plain-text cells (escaped here), one row per entry, named by its first
    cell; numeric columns get the ``num`` class."""
    header = "".join(f'<th scope="col"{NUMBER_CLASS if number else ""}>{html.escape(title)}</th>'
                     for title, number in zip(columns, numeric))
    body = []
    for name, *cells in rows:
        name = html.escape(name)
        body.append(f'<tr data-optimizer="{name}"><td class="optimizer">{name}</td>'
                    + "".join(f"<td{NUMBER_CLASS if number else ''}>{html.escape(cell)}</td>"
                              for cell, number in zip(cells, numeric[1:])) + "</tr>")
    data = "" if problem is None else f' data-problem="{html.escape(problem)}"'
    return (f'<table class="{css_class}"{data}><thead><tr>{header}</tr></thead><tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")


def html_table(problem: str, rows: pd.DataFrame) -> str:
    """The leaderboard table of one problem, rows already ranked."""
    return html_rows_table("leaderboard", COLUMNS, NUMERIC,
                           [table_cells(row) for _, row in rows.iterrows()], problem)


def exact_regret(value: float) -> str:
    """A target regret as exactly as a header can say it: a decimal of at most 4 significant
    digits when that is exact, else its fraction with the decimal (``175/256 ≈ 0.684``), since
    a rounded threshold misstates which runs reached it."""
    short = f"{value:.4g}"
    if float(short) == value:
        return short
    fraction = Fraction(value).limit_denominator(1_000_000)
    if math.isclose(fraction, value, rel_tol=1e-12):
        return f"{fraction} ≈ {value:.3f}"
    return f"{value:.6g}"


def fixed_target_grid(fixed_target: pd.DataFrame, problem: str) -> tuple[list[str], list[list]]:
    """One problem's fixed-target view as plain text: the target headers in regret, easiest
    first, then per entry (ordered by name) its name and one "ERT (successes/runs)" cell per
    target; ([], []) if none."""
    rows = fixed_target[fixed_target["problem"] == problem] if len(fixed_target) else fixed_target
    if rows.empty:
        return [], []
    targets = sorted(rows["target_regret"].unique(), reverse=True)
    headers = [f"regret ≤ {exact_regret(target)}" for target in targets]
    grid = []
    for optimizer, group in rows.groupby("optimizer", sort=True):
        by_target = group.set_index("target_regret")
        cells = []
        for target in targets:
            if target not in by_target.index:
                cells.append("")
                continue
            cell = by_target.loc[target]
            ert = "∞" if math.isinf(cell["ert"]) else f"{cell['ert']:,.0f}"
            cells.append(f"{ert} ({int(cell['successes'])}/{int(cell['runs'])})")
        grid.append([str(optimizer), *cells])
    return headers, grid


VERIFIED_COLUMNS = ("Optimizer", "Feasible queries", "Distinct queries", "Diversity",
                    "Wall time per run", "Hardware")
VERIFIED_NUMERIC = (False, True, True, True, True, False)
VERIFIED_NOTE = ("Computed from each run's trace when it was collected, not reported by the "
                 "optimizer; medians over runs. Diversity: mean pairwise normalized Hamming "
                 "distance of 500 queries drawn with a fixed seed.")


def verified_rows(rows: pd.DataFrame) -> list[tuple[str, ...]]:
    """One problem's verified measures as plain text, in the leaderboard's row order."""
    def fraction(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:.3f}"

    return [(str(row["optimizer"]), fraction(row["feasible_fraction"]),
             fraction(row["distinct_fraction"]), fraction(row["diversity"]),
             f"{row['median_seconds']:,.1f} s", str(row["hardware"]))
            for _, row in rows.iterrows()]


def verified_table(problem: str, rows: pd.DataFrame) -> str:
    """The verified-measures table of one problem (HTML)."""
    return (f'<p class="note">{html.escape(VERIFIED_NOTE)}</p>'
            + html_rows_table("verified", VERIFIED_COLUMNS, VERIFIED_NUMERIC, verified_rows(rows),
                              problem))


FIXED_TARGET_NOTE = ("Expected running time (ERT) to reach each target regret (the optimal "
                     "value minus a target value; for Ehrlich functions 1 - (j/q)^c, every motif "
                     "at least at level j/q): charged evaluations summed over all runs (up to "
                     "the target, or all of a run that never reached it) per run that reached "
                     "it; in brackets, the runs that reached it.")


def fixed_target_table(problem: str, fixed_target: pd.DataFrame) -> str:
    """The fixed-target table of one problem (HTML); '' when it has no targets."""
    headers, grid = fixed_target_grid(fixed_target, problem)
    if not grid:
        return ""
    return (f'<p class="note">{html.escape(FIXED_TARGET_NOTE)}</p>'
            + html_rows_table("fixed-target", ["Optimizer", *headers],
                              [False] + [True] * len(headers), grid, problem))


def rounds_table(problem: str, rounds: pd.DataFrame) -> str:
    """Per-round diagnostics the optimizers reported (LLOME), median over runs; '' if none."""
    if rounds is None or rounds.empty:
        return ""
    rows = rounds[rounds["problem"] == problem]
    if rows.empty:
        return ""
    columns = [c for c in ROUND_METRICS if c in rows]
    header = "".join(f'<th scope="col"{NUMBER_CLASS}>{ROUND_METRICS[c]}</th>' for c in columns)
    body = []
    for _, row in rows.iterrows():
        name = html.escape(str(row["optimizer"]))
        cells = "".join(f"<td{NUMBER_CLASS}>"
                        f"{'—' if pd.isna(row[c]) else f'{float(row[c]):.3f}'}</td>"
                        for c in columns)
        body.append(f'<tr><td class="optimizer">{name}</td>'
                    f'<td{NUMBER_CLASS}>{int(row["round"])}</td>'
                    f"<td{NUMBER_CLASS}>{int(row['seeds'])}</td>{cells}</tr>")
    return (f'<details class="rounds"><summary>Per-round diagnostics reported by the optimizers '
            f"(median over runs; not verified)</summary>"
            f'<table class="rounds" data-problem="{html.escape(problem)}"><thead><tr>'
            f'<th scope="col">Optimizer</th><th scope="col"{NUMBER_CLASS}>round</th>'
            f'<th scope="col"{NUMBER_CLASS}>runs</th>{header}</tr></thead><tbody>\n'
            + "\n".join(body) + "\n</tbody></table></details>")


def configurations_table(configurations: pd.DataFrame) -> str:
    """Each entry's optimizer, budget, counting rule and full parameters."""
    body = "\n".join(
        f'<tr><td class="optimizer">{html.escape(row.entry)}</td>'
        f"<td>{html.escape(row.optimizer)}</td>"
        f"<td{NUMBER_CLASS}>{row.budget:,}</td>"
        f"<td>{COUNT_LABELS.get(row.count, html.escape(row.count))}</td>"
        f"<td><code>{html.escape(row.params)}</code></td></tr>"
        for row in configurations.itertuples())
    return ('<table class="configurations"><thead><tr><th scope="col">Entry</th>'
            '<th scope="col">Optimizer</th><th scope="col" class="num">Budget</th>'
            '<th scope="col">Repeats</th><th scope="col">Parameters</th></tr></thead><tbody>\n'
            + body + "\n</tbody></table>")


def across_section(summary) -> str:
    """The across-problems section: the note, the ranked table, the ranking's test, and the CD
    diagram where that test rejects ('' if empty)."""
    rows = across_rows(summary)
    if not rows:
        return ""
    rejects = friedman_rejects(summary.ranking)
    result = (f'<p class="{"ranking-result" if rejects else "no-diagram"}">'
              f"{html.escape(ranking_result(summary))}</p>")
    diagram = (cd_diagram(summary.across, summary.ranking["critical_difference"])
               if rejects else "")
    return (f'<section class="across-section">\n<h2>Across problems</h2>\n'
            f'<p class="note">{html.escape(ranking_note(summary))}</p>\n'
            f"{html_rows_table('across', ACROSS_COLUMNS, ACROSS_NUMERIC, rows)}\n{result}\n"
            f"{diagram}\n</section>")


def legend(summary) -> str:
    """What each colour on the page means (HTML); the plots name their lines beside them."""
    items = [("best", f"Green row: the best entry of its problem ({BEST_RULE})."),
             ("line", "Plot lines: one colour per optimizer, the same in every plot, named "
                      "beside each plot; in the regret plots, the median over runs."),
             ("band", "Shaded bands: the 25th to 75th percentile over runs, in the line's "
                      "colour.")]
    if friedman_rejects(summary.ranking):
        items.append(("clique", "Thick black bars under the critical difference diagram's "
                                "rank axis: entries whose average ranks are not significantly "
                                "different."))
    return ('<ul class="legend">'
            + "".join(f'<li><span class="swatch {kind}"></span>{html.escape(text)}</li>'
                      for kind, text in items) + "</ul>")


def render_html(summary) -> str:
    """One self-contained HTML5 page: per problem a table and regret plot, then the ECDF plot."""
    palette = colors(summary)
    sections = []
    for problem, rows in ranked(summary.table).groupby("problem", sort=True):
        name = html.escape(str(problem))
        curves = summary.curves[summary.curves["problem"] == problem]
        plot = line_band_plot(series_by_optimizer(curves, palette, "median", ("q25", "q75")),
                              "regret-curve", f"Best-so-far regret on {problem}",
                              "best-so-far regret", data={"problem": str(problem)})
        details = rounds_table(str(problem), summary.rounds)
        targets = fixed_target_table(str(problem), summary.fixed_target)
        verified = verified_table(str(problem), rows)
        sections.append(f'<section class="problem" data-problem="{name}">\n<h2>{name}</h2>\n'
                        f'<p class="about">{html.escape(about(summary, problem))}</p>\n'
                        f"{html_table(str(problem), rows)}\n{plot}\n{targets}\n{verified}\n"
                        f"{details}</section>")
    ecdf = line_band_plot(series_by_optimizer(summary.ecdf, palette, "fraction"), "ecdf",
                          "Fixed-target ECDF across problems", "fraction of targets reached")
    problems = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>holo-bench leaderboard</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>holo-bench leaderboard</h1>
<p class="headline">{html.escape(headline(summary))}</p>
{legend(summary)}
<p class="lede">Regret is the gap to the optimal value after the given number of charged oracle
evaluations (0 is solved); lower is better, and so is AUC, the normalized area under the regret
curve on a log axis. The IQR and the plots' bands span the 25th to 75th percentile over
runs. "Repeats" says whether a repeated query of a sequence cost an evaluation (charged) or not
(free).</p>
<p class="lede">{html.escape(verdict_note(summary))}</p>
{problems}
<section class="ecdf-section">
<h2>Fixed-target ECDF across problems</h2>
{ecdf}
</section>
{across_section(summary)}
<section class="configurations-section">
<h2>Configurations</h2>
{configurations_table(summary.configurations)}
</section>
<footer>Generated {html.escape(summary.generated)}.</footer>
</main>
</body>
</html>
"""


def write_leaderboard(summary, html_path: str | os.PathLike | None = None,
                      markdown_path: str | os.PathLike | None = None) -> None:
    """Write the HTML and/or markdown leaderboard, creating parent directories. Each file is
    replaced whole, so two processes writing one page leave one of their pages, never a mix."""
    for path, render in ((html_path, render_html), (markdown_path, render_markdown)):
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                             prefix=f".{path.name}.", delete=False) as file:
                file.write(render(summary))
            os.replace(file.name, path)
