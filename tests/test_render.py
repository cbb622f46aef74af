"""Leaderboard rendering: ranked tables in markdown and HTML, SVG plots to scale, names escaped,
and a page that never contradicts itself."""

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from leaderboard.aggregate import Summary, summarize_store
from leaderboard.render import (
    STYLE,
    cliques,
    escape_markdown,
    exact_regret,
    p_text,
    ranking_result,
    render_html,
    render_markdown,
    write_leaderboard,
)
from leaderboard.stats import nemenyi_critical_difference
from leaderboard.store import collect, connect, targets_for

SCRIPT = "<script>alert(1)</script>"
PIPE = "a|b"
GRID = [1, 10, 50, 1000]

# (problem, optimizer, seeds, median, q25, q75, median evals to solve, fraction solved, auc)
ROWS = [
    ("tfbind_8", "random", 5, 0.1, 0.0, 0.2, 800.0, 0.4, 0.35),
    ("tfbind_8", "ga", 5, 0.0, 0.0, 0.0, 120.0, 1.0, 0.10),
    ("ehrlich-4x4", "random", 5, 0.578, 0.438, 0.578, math.inf, 0.0, 0.70),
    ("ehrlich-4x4", "ga", 5, 0.25, 0.125, 0.5, 640.0, 0.6, 0.30),
    ("ehrlich-4x4", PIPE, 5, 0.25, 0.0, 0.5, 300.0, 0.4, 0.20),
    ("ehrlich-4x4", SCRIPT, 3, 1.0, 1.0, 1.0, math.inf, 0.0, 1.0),
]
# (regret CI low, high, AUC CI low, high, p regret lower, higher, p AUC lower, higher, verdict
# on regret, on AUC) per row of ROWS, as ``aggregate`` writes them against the reference, ga.
VERDICTS = [
    (0.0, 0.2, 0.3, 0.4, 0.9, 0.04, 1.0, 0.00061, "worse", "worse"),
    (0.0, 0.0, 0.1, 0.1, math.nan, math.nan, math.nan, math.nan, "reference", "reference"),
    (0.438, 0.578, 0.6, 0.8, 1.0, 0.031, 1.0, 0.0042, "worse", "worse"),
    (0.125, 0.5, 0.25, 0.35, math.nan, math.nan, math.nan, math.nan, "reference", "reference"),
    (0.0, 0.5, 0.1, 0.3, 0.21, 0.9, 0.012, 1.0, "no evidence", "better"),
    (1.0, 1.0, math.nan, math.nan, 1.0, 0.11, 1.0, 0.2, "no evidence", "no evidence"),
]
# ehrlich-4x4 in rank order: the tie at 0.25 goes to the lower AUC.
EHRLICH_MARKDOWN = [
    r"| a\|b | 3 | 5 | 1,000 | free | 0.250 [0.000, 0.500] | [0.000, 0.500] | 300 | 2/5 "
    "| 0.200 [0.100, 0.300] | no evidence (p=0.21) | better (p=0.012) |",
    "| ga | 3 | 5 | 1,000 | free | 0.250 [0.125, 0.500] | [0.125, 0.500] | 640 | 3/5 "
    "| 0.300 [0.250, 0.350] | reference | reference |",
    "| random | 3 | 5 | 1,000 | free | 0.578 [0.438, 0.578] | [0.438, 0.578] | — | 0/5 "
    "| 0.700 [0.600, 0.800] | worse (p=0.031) | worse (p=0.0042) |",
    "| &lt;script&gt;alert(1)&lt;/script&gt; | 3 | 3 | 1,000 | free | 1.000 [1.000, 1.000] "
    "| [1.000, 1.000] | — | 0/3 | 1.000 — | no evidence (p=0.11) | no evidence (p=0.20) |",
]
ABOUT_EHRLICH = "3 instances of ehrlich:v=4,L=4,c=1,k=2,q=2, instance seeds 1, 2, 3"
# ga's regret curve on ehrlich-4x4, whose geometry the plot tests check; it ends at ga's table row.
GA_MEDIAN = [1.0, 0.5, 0.25, 0.25]
GA_Q25, GA_Q75 = [0.75, 0.25, 0.125, 0.125], [1.0, 0.75, 0.5, 0.5]


def make_summary() -> Summary:
    """A hand-made summary: two problems, four optimizers, two names that are hostile markup.

    Curves fall from regret 1 to each row's final quartiles, so plots and tables agree.
    """
    table = pd.DataFrame(ROWS, columns=[
        "problem", "optimizer", "seeds", "median_regret", "q25_regret", "q75_regret",
        "median_evals_to_solve", "fraction_solved", "auc",
    ]).assign(budget=1000, count="distinct", instances=[1, 1, 3, 3, 3, 3])
    table[["regret_ci_low", "regret_ci_high", "auc_ci_low", "auc_ci_high", "p_regret_lower",
           "p_regret_higher", "p_auc_lower", "p_auc_higher"]] = [row[:8] for row in VERDICTS]
    table["verdict_regret"] = [row[8] for row in VERDICTS]
    table["verdict_auc"] = [row[9] for row in VERDICTS]
    table["feasible_fraction"] = [1.0, 0.98, 0.5, 0.25, 0.75, math.nan]
    table["distinct_fraction"] = [0.9, 0.6, 0.95, 0.5, 0.7, math.nan]
    table["diversity"] = [0.4, 0.2, 0.45, 0.3, 0.35, math.nan]
    table["median_seconds"] = [1.25, 3.0, 1.0, 2.5, 4.0, 0.5]
    table["hardware"] = "2 CPUs, 1 torch thread"
    curves = []
    for problem, optimizer, _, *final, _, _, _ in ROWS:
        ga = (problem, optimizer) == ("ehrlich-4x4", "ga")
        median, q25, q75 = (GA_MEDIAN, GA_Q25, GA_Q75) if ga else (
            np.linspace(1, end, len(GRID)) for end in final)
        curves.append(pd.DataFrame({"problem": problem, "optimizer": optimizer,
                                    "evaluations": GRID, "median": median, "q25": q25, "q75": q75}))
    ecdf = pd.DataFrame([(optimizer, e, f) for optimizer, shift in
                         (("ga", 0.5), ("random", 0.1), (PIPE, 0.3), (SCRIPT, 0.0))
                         for e, f in zip(GRID, (0, shift / 2, shift, shift))],
                        columns=["optimizer", "evaluations", "fraction"])
    configurations = pd.DataFrame(
        [(name, "ga", '{"num_particles": 100}', 1000, "distinct") for name in ("ga", PIPE, SCRIPT)]
        + [("random", "random", '{"batch_size": 100}', 1000, "distinct")],
        columns=["entry", "optimizer", "params", "budget", "count"])
    # ehrlich-4x4 (c=1, q=2, optimal value 1): target values 1/2 and 1 are regrets 1/2 and 0
    fixed_target = pd.DataFrame(
        [("ehrlich-4x4", "ga", 0.5, 0.5, 5, 3, 0.6, 1234.0),
         ("ehrlich-4x4", "ga", 1.0, 0.0, 5, 0, 0.0, math.inf),
         ("ehrlich-4x4", SCRIPT, 0.5, 0.5, 3, 0, 0.0, math.inf)],
        columns=["problem", "optimizer", "target", "target_regret", "runs", "successes",
                 "success_rate", "ert"])
    across = pd.DataFrame(
        [("ga", 2, 2, 10, 0.25, 0.1, 0.4, 1.0), ("random", 2, 2, 10, 1.0, 0.8, 1.0, 2.0),
         (PIPE, 1, 1, 3, 0.43, 0.0, 0.86, math.nan),
         (SCRIPT, 1, 0, 3, math.nan, math.nan, math.nan, math.nan)],
        columns=["optimizer", "problems", "scored_problems", "runs", "normalized_score",
                 "score_ci_low", "score_ci_high", "average_rank"])
    ranking = {"problems": 2, "entries": 2, "friedman_p": math.nan, "critical_difference": 1.386}
    problems = pd.DataFrame(
        [("tfbind_8", "rmf:L=8", "rmf:L=8,seed=1"),
         ("ehrlich-4x4", "ehrlich:v=4,L=4,c=1,k=2,q=2", ABOUT_EHRLICH)],
        columns=["problem", "family", "about"])
    return Summary(table=table, curves=pd.concat(curves, ignore_index=True), ecdf=ecdf,
                   generated="2024-05-01 12:00:00 UTC", configurations=configurations,
                   problems=problems,
                   fixed_target=fixed_target, across=across, ranking=ranking)


# Ranks over 8 problems where Friedman's test rejects (ranks sum to 6 = 1 + 2 + 3 per problem);
# with Nemenyi's CD for k = 3, N = 8 (1.17), ga and a|b (0.65 apart) and a|b and random (0.95)
# form groups, ga and random (1.6 apart) differ.
RANKS = {"ga": 1.25, PIPE: 1.9, "random": 2.85}


def make_ranked_summary(critical_difference: float | None = None) -> Summary:
    """``make_summary`` with three optimizers ranked over 8 problems and Friedman rejecting."""
    summary = make_summary()
    ranked = summary.across["optimizer"].isin(RANKS)
    summary.across.loc[ranked, "problems"] = 8
    summary.across["average_rank"] = summary.across["optimizer"].map(RANKS)
    summary.ranking = {"problems": 8, "entries": 3, "friedman_p": 0.0006,
                       "critical_difference": (nemenyi_critical_difference(3, 8)
                                               if critical_difference is None
                                               else critical_difference)}
    return summary


class TreeParser(HTMLParser):
    """Parses HTML into an ElementTree, failing on any end tag that does not close the open one."""

    VOID = {"meta", "link", "br", "hr", "img", "input", "col", "wbr", "source"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.builder, self.open = ET.TreeBuilder(), []

    def handle_starttag(self, tag, attrs):
        self.builder.start(tag, {k: v or "" for k, v in attrs})
        if tag in self.VOID:
            self.builder.end(tag)
        else:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.builder.start(tag, {k: v or "" for k, v in attrs})
        self.builder.end(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.builder.end(self.open.pop())

    def handle_data(self, data):
        self.builder.data(data)


def parse(page: str) -> ET.Element:
    parser = TreeParser()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    return parser.builder.close()


@pytest.fixture(scope="module")
def markdown():
    return render_markdown(make_summary())


@pytest.fixture(scope="module")
def page():
    return render_html(make_summary())


@pytest.fixture(scope="module")
def dom(page):
    return parse(page)


def regret_svg(dom, problem):
    return dom.find(f".//svg[@class='regret-curve'][@data-problem='{problem}']")


def series(svg) -> dict[str, ET.Element]:
    """The plotted series of an SVG by optimizer name."""
    return {g.get("data-optimizer"): g for g in svg.iter("g") if g.get("class") == "series"}


def coordinates(points: str) -> np.ndarray:
    return np.array([[float(v) for v in pair.split(",")] for pair in points.split()])


def axes(svg):
    """Pixel positions of the x ticks by evaluations and of the y ticks by value, from the SVG."""
    x = {int(t.get("data-evaluations")): float(t.get("x1")) for t in svg.iter("line")
         if t.get("class") == "x-tick"}
    y = {float(t.get("data-value")): float(t.get("y1")) for t in svg.iter("line")
         if t.get("class") == "y-tick"}
    return x, y


# ---------------------------------------------------------------------------------------------
# Markdown


def test_markdown_has_a_heading_and_table_per_problem_in_sorted_order(markdown):
    assert re.findall(r"^## (.*)$", markdown, re.M) == [r"ehrlich-4x4", r"tfbind\_8",
                                                         "Across problems", "Configurations"]


def test_markdown_rows_are_ranked_by_median_regret_then_auc(markdown):
    ehrlich = markdown.split("## ")[1].splitlines()
    assert ehrlich[4].startswith("| Optimizer | Instances | Runs | Budget | Repeats "
                                 "| Median final regret [IQR] |")
    assert ehrlich[6:10] == EHRLICH_MARKDOWN


def test_each_problem_says_which_instances_it_pools_in_both_formats(markdown, dom):
    ehrlich = markdown.split("## ")[1].splitlines()
    assert ehrlich[2] == escape_markdown(f"Instances: {ABOUT_EHRLICH}.")
    shown = {section.get("data-problem"): [p.text for p in section.iter("p")
                                           if p.get("class") == "about"]
             for section in dom.iter("section") if section.get("class") == "problem"}
    assert shown == {"ehrlich-4x4": [f"Instances: {ABOUT_EHRLICH}."],
                     "tfbind_8": ["Instances: rmf:L=8,seed=1."]}


def test_markdown_escapes_names_so_every_row_keeps_its_cells(markdown):
    assert "<script>" not in markdown and r"a\|b" in markdown
    boards, configurations = markdown.split("## Configurations")
    boards, across = boards.split("## Across problems")
    rows = [line for line in boards.splitlines() if line.startswith("|")]
    cells = [len(re.split(r"(?<!\\)\|", row)) for row in rows]
    # 12 cells per leaderboard row, 6 per verified-measures row, 3 per fixed-target row (header,
    # rule, ga, the script name)
    assert cells.count(14) == 10 and cells.count(8) == 10 and cells.count(5) == 4
    assert len(cells) == 24
    rows = [line for line in across.splitlines() if line.startswith("|")]
    assert len(rows) == 6 and all(len(re.split(r"(?<!\\)\|", row)) == 7 for row in rows)
    rows = [line for line in configurations.splitlines() if line.startswith("|")]
    assert len(rows) == 6 and all(len(re.split(r"(?<!\\)\|", row)) == 7 for row in rows)


# ---------------------------------------------------------------------------------------------
# HTML: structure and escaping


def test_html_has_one_table_and_one_regret_plot_per_problem_and_one_ecdf(dom):
    tables = dom.findall(".//table[@class='leaderboard']")
    assert [t.get("data-problem") for t in tables] == ["ehrlich-4x4", "tfbind_8"]
    plots = dom.findall(".//svg[@class='regret-curve']")
    assert [p.get("data-problem") for p in plots] == ["ehrlich-4x4", "tfbind_8"]
    assert len(dom.findall(".//svg[@class='ecdf']")) == 1


def test_html_table_has_the_markdown_rows_with_names_as_plain_text(dom):
    table = dom.find(".//table[@data-problem='ehrlich-4x4']")
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert [row[0] for row in cells] == [PIPE, "ga", "random", SCRIPT]
    numbers = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[2:-1]]
               for row in EHRLICH_MARKDOWN]
    assert [row[1:] for row in cells] == numbers


def test_html_shows_hostile_names_as_text_in_tables_plots_and_attributes(page, dom):
    assert "<script" not in page.lower()
    assert {e.tag for e in dom.iter()} & {"script", "iframe", "object", "embed"} == set()
    assert SCRIPT in [td.text for td in dom.iter("td")]
    legends = [g for g in dom.iter("g") if g.get("class") == "legend-entry"]
    assert SCRIPT in {g.get("data-optimizer") for g in legends}
    assert SCRIPT in {g.find("title").text for g in legends}


def test_html_references_nothing_outside_the_file(page, dom):
    assert re.search(r"https?://|//[a-z]", page, re.I) is None
    assert not [e for e in dom.iter() if {"src", "href"} & set(e.attrib)]


def test_svg_fragments_are_well_formed_xml(page):
    fragments = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(fragments) == 3  # two regret plots, the ECDF; Friedman's test cannot run
    fragments += re.findall(r'<svg class="cd-diagram".*?</svg>',
                            render_html(make_ranked_summary()), re.S)
    assert len(fragments) == 4
    for fragment in fragments:
        assert ET.fromstring(fragment).tag == "svg"


# ---------------------------------------------------------------------------------------------
# HTML: plot geometry, read back from the SVG's own ticks


def test_x_ticks_are_evenly_spaced_decades_spanning_the_data(dom):
    x, _ = axes(regret_svg(dom, "ehrlich-4x4"))
    assert sorted(x) == [1, 10, 100, 1000]
    np.testing.assert_allclose(np.diff([x[e] for e in sorted(x)]), x[10] - x[1], atol=0.02)


def step_corners(xs, ys) -> np.ndarray:
    """The corners of a step function through (xs, ys), by hand: to each next x at the old y,
    then up or down to the new y."""
    corners = [(xs[0], ys[0])]
    for x, y, previous in zip(xs[1:], ys[1:], ys[:-1]):
        corners += [(x, previous), (x, y)]
    return np.array(corners)


def test_median_line_is_a_step_through_log10_evaluations_and_linear_regret(dom):
    svg = regret_svg(dom, "ehrlich-4x4")
    x, y = axes(svg)
    ga = series(svg)["ga"]
    line = coordinates(ga.find("polyline").get("points"))
    decade = x[100] - x[10]
    expected_x = [x[1], x[10], x[10] + math.log10(5) * decade, x[1000]]
    expected_y = [y[1.0], (y[0.0] + y[1.0]) / 2, y[0.25], y[0.25]]  # regret 1, 0.5, 0.25, 0.25
    np.testing.assert_allclose(line, step_corners(expected_x, expected_y), atol=0.01)


def test_every_curve_segment_is_horizontal_then_vertical(dom):
    """Best-so-far regret and targets reached change only at evaluations: no slanted line."""
    for svg in dom.iter("svg"):
        for g in series(svg).values():
            line = coordinates(g.find("polyline").get("points"))
            moves = np.diff(line, axis=0)
            assert np.allclose(moves[0::2, 1], 0) and np.allclose(moves[1::2, 0], 0)


def test_band_steps_along_the_75th_percentile_and_back_along_the_25th(dom):
    svg = regret_svg(dom, "ehrlich-4x4")
    x, y = axes(svg)
    ga = series(svg)["ga"]
    band = coordinates(ga.find("polygon").get("points"))
    xs = coordinates(ga.find("polyline").get("points"))[0::2, 0]  # the grid, as the line has it
    upper = step_corners(xs, np.interp(GA_Q75, [0, 1], [y[0.0], y[1.0]]))  # y is linear
    lower = step_corners(xs, np.interp(GA_Q25, [0, 1], [y[0.0], y[1.0]]))[::-1]
    np.testing.assert_allclose(band, np.concatenate([upper, lower]), atol=0.01)
    assert xs[0] == pytest.approx(x[1]) and xs[-1] == pytest.approx(x[1000])


def test_no_curve_or_band_touches_the_plot_frame(dom):
    """Regret 1 (the script entry never leaves the start) and 0 and the first and last
    evaluations lie inside the frame, not on it, where a line would hide."""
    for svg in (e for e in dom.iter("svg") if e.get("class") in ("regret-curve", "ecdf")):
        frame = svg.find("rect")
        left, top = float(frame.get("x")), float(frame.get("y"))
        right, bottom = left + float(frame.get("width")), top + float(frame.get("height"))
        for g in series(svg).values():
            for shape in ("polyline", "polygon"):
                if g.find(shape) is None:
                    continue
                drawn = coordinates(g.find(shape).get("points"))
                assert (drawn[:, 0] > left + 2).all() and (drawn[:, 0] < right - 2).all()
                assert (drawn[:, 1] > top + 2).all() and (drawn[:, 1] < bottom - 2).all()
    script = coordinates(series(regret_svg(dom, "ehrlich-4x4"))[SCRIPT].find("polyline")
                         .get("points"))
    assert np.allclose(script[:, 1], axes(regret_svg(dom, "ehrlich-4x4"))[1][1.0])


def test_each_optimizer_keeps_one_color_across_every_plot(dom):
    strokes = {}
    for svg in dom.iter("svg"):
        for name, g in series(svg).items():
            strokes.setdefault(name, set()).add(g.find("polyline").get("stroke"))
    assert set(strokes) == {"ga", "random", PIPE, SCRIPT}
    assert all(len(colors) == 1 for colors in strokes.values())
    assert len({colors.pop() for colors in strokes.values()}) == 4


def test_ecdf_plots_the_fraction_of_targets_reached_per_optimizer(dom):
    svg = dom.find(".//svg[@class='ecdf']")
    _, y = axes(svg)
    ga = series(svg)["ga"]
    heights = coordinates(ga.find("polyline").get("points"))[0::2, 1]  # the step's grid corners
    np.testing.assert_allclose(heights, np.interp([0, 0.25, 0.5, 0.5], [0, 1], [y[0.0], y[1.0]]),
                               atol=0.01)
    assert ga.find("polygon") is None


# ---------------------------------------------------------------------------------------------
# Files


def test_write_leaderboard_creates_parent_directories(tmp_path):
    summary = make_summary()
    html_path, markdown_path = tmp_path / "site" / "index.html", tmp_path / "docs" / "lb.md"
    write_leaderboard(summary, html_path=html_path, markdown_path=markdown_path)
    assert html_path.read_text(encoding="utf-8") == render_html(summary)
    assert markdown_path.read_text(encoding="utf-8") == render_markdown(summary)


def test_both_formats_say_how_verdicts_are_reached(markdown, page):
    for text in (markdown, page):
        assert "Verdicts compare each optimizer with ga on the same problem" in text
        assert "Holm-adjusted" in text and "alpha = 0.05" in text


def test_fixed_target_tables_are_headed_in_regret_in_both_formats(markdown, dom):
    table = dom.find(".//table[@class='fixed-target']")
    assert table.get("data-problem") == "ehrlich-4x4"
    assert [th.text for th in table.iter("th")] == ["Optimizer", "regret ≤ 0.5", "regret ≤ 0"]
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert cells == [[SCRIPT, "∞ (0/3)", None], ["ga", "1,234 (3/5)", "∞ (0/5)"]]
    assert "| Optimizer | regret ≤ 0.5 | regret ≤ 0 |" in markdown
    assert "| ga | 1,234 (3/5) | ∞ (0/5) |" in markdown
    assert len(dom.findall(".//table[@class='fixed-target']")) == 1  # tfbind_8 has no targets
    assert "value ≥" not in markdown and "value ≥" not in ET.tostring(dom, encoding="unicode")


def test_stored_targets_reach_the_page_as_regrets_from_the_runs_optimal_value(tmp_path):
    """End to end: an Ehrlich run's target values (j/q)^c are headed 1 - (j/q)^c, its optimal
    value (1) minus each, easiest first."""
    from harness.executors import run_grid
    from harness.runner import make_job

    job = make_job("random", "smoke_ehrlich_small", 0, 200, tmp_path / "runs", {"batch_size": 20})
    run_grid([job], workers=1, progress=False)
    collect(tmp_path / "runs", tmp_path / "store.sqlite")
    summary = summarize_store(tmp_path / "store.sqlite", reference="random")
    regrets = 1 - targets_for(job.run.spec)  # q = 4, c = 2: 15/16, 3/4, 7/16, 0
    np.testing.assert_array_equal(summary.fixed_target["target_regret"], regrets)
    table = parse(render_html(summary)).find(".//table[@class='fixed-target']")
    assert [th.text for th in table.iter("th")][1:] == [
        f"regret ≤ {regret:g}" for regret in regrets]


def test_target_regrets_are_written_exactly():
    """Ehrlich targets as regrets, 1 - (j/q)^c: a fraction where no short decimal is exact."""
    assert exact_regret(1 - (3 / 4) ** 4) == "175/256 ≈ 0.684"
    assert exact_regret(1 - (1 / 4) ** 4) == "255/256 ≈ 0.996"
    assert exact_regret(1 - (1 / 3) ** 2) == "8/9 ≈ 0.889"
    assert exact_regret(1 - (2 / 4) ** 4) == "0.9375"
    assert exact_regret(1 - 1.0) == "0"


def test_p_values_have_two_significant_digits_and_go_scientific_below_a_thousandth():
    assert [p_text(p) for p in (1.0, 0.21, 0.2, 0.05, 0.0042, 0.001, 0.00061, 0.0006)] == [
        "p=1.0", "p=0.21", "p=0.20", "p=0.050", "p=0.0042", "p=0.0010", "p=6.1×10⁻⁴",
        "p=6.0×10⁻⁴"]
    assert p_text(1.2e-12) == "p=1.2×10⁻¹²"


def test_every_p_value_on_the_page_is_written_one_way():
    """Tables, notes and the headline all use ``p_text``: no "p = 0.2" beside "p=0.20"."""
    pattern = re.compile(r"^(?:[1-9]\.\d×10⁻[¹²³⁴⁵⁶⁷⁸⁹][⁰¹²³⁴⁵⁶⁷⁸⁹]*|0\.0{0,2}[1-9]\d|1\.0)$")
    for summary in (make_summary(), make_ranked_summary()):
        for text in (render_markdown(summary), render_html(summary)):
            found = re.findall(r"\bp\s*=\s*([^\s,;)]*)", text)
            assert len(found) >= 9 and all(pattern.match(value) for value in found), found
            assert not re.search(r"\bp\s+=|\bp=\s", text)
    assert "worse (p=6.1×10⁻⁴)" in render_markdown(make_summary())


HEADLINE = ("Best on each problem (lowest median final regret; ties go to the lower mean AUC, "
            "then the name): a|b on ehrlich-4x4, no evidence of a difference from ga in final "
            "regret (p=0.21); ga on tfbind_8, the reference. Across problems, ga has the best "
            "average rank (1.00 among the 2 optimizers run on every problem; too few optimizers "
            "or problems for Friedman's test, so the ranks are not tested).")


def test_both_formats_open_with_one_line_naming_each_problems_best_and_its_verdict(markdown,
                                                                                     dom):
    """ehrlich-4x4: a|b and ga tie at median regret 0.25; a|b's lower AUC wins, as in the table,
    whose verdict cell it repeats; tfbind_8: ga, the reference, has the lowest median."""
    assert markdown.splitlines()[2] == escape_markdown(HEADLINE)
    [line] = [p for p in dom.iter("p") if p.get("class") == "headline"]
    assert line.text == HEADLINE
    first = dom.find(".//table[@data-problem='ehrlich-4x4']").find("tbody").find("tr")
    assert first.get("data-optimizer") == PIPE and "no evidence (p=0.21)" in [
        td.text for td in first.findall("td")]


def test_the_headline_says_what_friedmans_test_found_when_it_ran():
    ranked = make_ranked_summary()
    assert render_markdown(ranked).splitlines()[2].endswith(escape_markdown(
        "Across problems, ga has the best average rank (1.25 among the 3 optimizers run on every "
        "problem; Friedman's test finds they differ, p=6.0×10⁻⁴; Nemenyi's test tells apart only "
        "ranks at least 1.17 apart)."))
    ranked.ranking["friedman_p"] = 0.31
    assert render_markdown(ranked).splitlines()[2].endswith(escape_markdown(
        "Friedman's test finds no significant difference between them, p=0.31)."))
    ranked.across["average_rank"] = ranked.across["optimizer"].map(  # a tie for the best
        {"ga": 1.5, PIPE: 1.5, "random": 3.0})
    assert render_markdown(ranked).splitlines()[2].endswith(escape_markdown(
        f"Across problems, ga and {PIPE} share the best average rank (1.50 among the 3 "
        "optimizers run on every problem; Friedman's test finds no significant difference "
        "between them, p=0.31)."))


def test_legend_names_every_colour_on_the_page(dom):
    items = {li.find("span").get("class"): "".join(li.itertext())
             for li in dom.find(".//ul[@class='legend']").iter("li")}
    assert list(items) == ["swatch best", "swatch line", "swatch band"]
    assert items["swatch best"].startswith("Green row: the best entry of its problem (lowest "
                                           "median final regret;")
    # the swatch and the highlighted first rows take their colour from one variable
    assert "table.leaderboard tbody tr:first-child td { background: var(--best); }" in STYLE
    assert ".swatch.best { background: var(--best);" in STYLE
    ranked = parse(render_html(make_ranked_summary()))
    kinds = [li.find("span").get("class") for li in ranked.find(".//ul[@class='legend']")]
    assert kinds == ["swatch best", "swatch line", "swatch band", "swatch clique"]


def test_across_problems_table_in_both_formats(markdown, dom):
    table = dom.find(".//table[@class='across']")
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert cells == [["ga", "2 of 2", "10", "0.250 [0.100, 0.400]", "1.00"],
                     ["random", "2 of 2", "10", "1.000 [0.800, 1.000]", "2.00"],
                     [PIPE, "1 of 1", "3", "0.430 [0.000, 0.860]", "—"],
                     [SCRIPT, "0 of 1", "3", "—", "—"]]
    assert r"| a\|b | 1 of 1 | 3 | 0.430 [0.000, 0.860] | — |" in markdown


NO_FRIEDMAN = ("No critical difference diagram: Friedman's test needs at least 3 optimizers run "
               "on every problem and at least 2 problems; this page has 2 and 2, so the ranks "
               "are not tested.")


def test_no_cd_diagram_where_friedmans_test_cannot_run_and_both_formats_say_why(markdown, dom):
    """Two optimizers on two problems (the issue's page): no diagram to join them with a bar."""
    assert dom.find(".//svg[@class='cd-diagram']") is None
    [line] = [p for p in dom.iter("p") if p.get("class") == "no-diagram"]
    assert line.text == NO_FRIEDMAN
    assert escape_markdown(NO_FRIEDMAN) in markdown.splitlines()


def test_no_cd_diagram_where_friedmans_test_does_not_reject():
    summary = make_ranked_summary()
    summary.ranking["friedman_p"] = 0.31
    expected = ("No critical difference diagram: Friedman's test over 8 problems and 3 "
                "optimizers does not reject that they all rank alike (p=0.31, alpha = 0.05), so "
                "no difference of average ranks is significant.")
    assert ranking_result(summary) == expected
    dom = parse(render_html(summary))
    assert dom.find(".//svg[@class='cd-diagram']") is None
    assert [p.text for p in dom.iter("p") if p.get("class") == "no-diagram"] == [expected]
    assert escape_markdown(expected) in render_markdown(summary).splitlines()


def test_cd_diagram_where_friedmans_test_rejects_with_its_groups_in_both_formats():
    summary = make_ranked_summary()
    expected = ("Friedman's test over 8 problems and 3 optimizers rejects that they all rank "
                "alike (p=6.0×10⁻⁴, alpha = 0.05). Average ranks closer than Nemenyi's critical "
                "difference, CD = 1.17, are not significantly different; groups within it: "
                f"ga, {PIPE}; {PIPE}, random.")
    assert ranking_result(summary) == expected
    assert escape_markdown(expected) in render_markdown(summary).splitlines()
    dom = parse(render_html(summary))
    assert [p.text for p in dom.iter("p") if p.get("class") == "ranking-result"] == [expected]
    assert not [p for p in dom.iter("p") if p.get("class") == "no-diagram"]
    diagram = dom.find(".//svg[@class='cd-diagram']")
    entries = [g for g in diagram.iter("g") if g.get("class") == "cd-entry"]
    assert [(g.get("data-optimizer"), g.get("data-rank")) for g in entries] == [
        ("ga", "1.250"), (PIPE, "1.900"), ("random", "2.850")]
    assert len([line for line in diagram.iter("line") if line.get("class") == "clique"]) == 2


@pytest.mark.parametrize("difference", [None, 4.0])
def test_cd_bar_is_drawn_to_the_scale_of_the_rank_axis(difference):
    """The bar spans CD ranks of the axis' scale; a CD wider than the axis (k - 1 = 2 ranks; 4
    here, where no two ranks can differ) is drawn wider than it, inside the diagram, never cut."""
    summary = make_ranked_summary(difference)
    cd = summary.ranking["critical_difference"]
    diagram = parse(render_html(summary)).find(".//svg[@class='cd-diagram']")
    axis = next(line for line in diagram.iter("line") if line.get("class") == "frame")
    bar = diagram.find(".//g[@class='critical-difference']/line")
    axis_length = float(axis.get("x2")) - float(axis.get("x1"))
    bar_length = float(bar.get("x2")) - float(bar.get("x1"))
    assert bar_length / axis_length == pytest.approx(cd / 2, abs=1e-3)
    assert float(bar.get("x2")) < float(diagram.get("width"))


def test_cliques_are_maximal_runs_closer_than_the_critical_difference():
    assert cliques([1.0, 1.2, 2.5, 2.6, 4.0], 1.0) == [(0, 1), (2, 3)]
    assert cliques([1.0, 1.5, 1.9], 1.0) == [(0, 2)]  # (1, 2) lies inside (0, 2)
    assert cliques([1.0, 3.0], 1.0) == []


def test_summarizing_a_store_without_runs_says_so_in_one_line(tmp_path):
    db = tmp_path / "empty.sqlite"
    connect(db).close()  # a store with its tables and no runs
    with pytest.raises(ValueError) as raised:
        summarize_store(db)
    message = str(raised.value)
    assert message.startswith(f"the store {db} holds no runs; collect runs into it first")
    assert "\n" not in message


def test_verified_measures_tables_in_both_formats(markdown, dom):
    table = dom.find(".//table[@data-problem='ehrlich-4x4'][@class='verified']")
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert cells[0] == [PIPE, "0.750", "0.700", "0.350", "4.0 s", "2 CPUs, 1 torch thread"]
    assert cells[-1] == [SCRIPT, "—", "—", "—", "0.5 s", "2 CPUs, 1 torch thread"]
    assert r"| a\|b | 0.750 | 0.700 | 0.350 | 4.0 s | 2 CPUs, 1 torch thread |" in markdown
