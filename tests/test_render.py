"""Leaderboard rendering: ranked tables in markdown and HTML, SVG plots to scale, names escaped."""

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from leaderboard.aggregate import Summary
from leaderboard.render import (
    cliques,
    escape_markdown,
    ranking_note,
    render_html,
    render_markdown,
    write_leaderboard,
)

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
    (0.0, 0.2, 0.3, 0.4, 0.9, 0.04, 1.0, 0.002, "worse", "worse"),
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
    "| [1.000, 1.000] | — | 0/3 | 1.000 — | no evidence (p=0.11) | no evidence (p=0.2) |",
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
    fixed_target = pd.DataFrame(
        [("ehrlich-4x4", "ga", 0.5, 5, 3, 0.6, 1234.0),
         ("ehrlich-4x4", "ga", 1.0, 5, 0, 0.0, math.inf),
         ("ehrlich-4x4", SCRIPT, 0.5, 3, 0, 0.0, math.inf)],
        columns=["problem", "optimizer", "target", "runs", "successes", "success_rate", "ert"])
    across = pd.DataFrame(
        [("ga", 2, 2, 0.25, 0.1, 0.4, 1.0), ("random", 2, 2, 1.0, 0.8, 1.0, 2.0),
         (PIPE, 1, 1, 0.43, 0.0, 0.86, math.nan), (SCRIPT, 1, 0, math.nan, math.nan, math.nan,
                                                   math.nan)],
        columns=["optimizer", "problems", "scored_problems", "normalized_score", "score_ci_low",
                 "score_ci_high", "average_rank"])
    ranking = {"problems": 2, "entries": 2, "friedman_p": math.nan, "critical_difference": 1.386}
    problems = pd.DataFrame(
        [("tfbind_8", "rmf:L=8", "rmf:L=8,seed=1"),
         ("ehrlich-4x4", "ehrlich:v=4,L=4,c=1,k=2,q=2", ABOUT_EHRLICH)],
        columns=["problem", "family", "about"])
    return Summary(table=table, curves=pd.concat(curves, ignore_index=True), ecdf=ecdf,
                   generated="2024-05-01 12:00:00 UTC", configurations=configurations,
                   problems=problems,
                   fixed_target=fixed_target, across=across, ranking=ranking)


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
    assert len(rows) == 6 and all(len(re.split(r"(?<!\\)\|", row)) == 6 for row in rows)
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
    assert len(fragments) == 4  # two regret plots, the ECDF, the CD diagram
    for fragment in fragments:
        assert ET.fromstring(fragment).tag == "svg"


# ---------------------------------------------------------------------------------------------
# HTML: plot geometry, read back from the SVG's own ticks


def test_x_ticks_are_evenly_spaced_decades_spanning_the_data(dom):
    x, _ = axes(regret_svg(dom, "ehrlich-4x4"))
    assert sorted(x) == [1, 10, 100, 1000]
    np.testing.assert_allclose(np.diff([x[e] for e in sorted(x)]), x[10] - x[1], atol=0.02)


def test_median_line_maps_evaluations_through_log10_and_regret_linearly(dom):
    svg = regret_svg(dom, "ehrlich-4x4")
    x, y = axes(svg)
    ga = series(svg)["ga"]
    line = coordinates(ga.find("polyline").get("points"))
    decade = x[100] - x[10]
    expected_x = [x[1], x[10], x[10] + math.log10(5) * decade, x[1000]]
    expected_y = [y[1.0], (y[0.0] + y[1.0]) / 2, y[0.25], y[0.25]]  # regret 1, 0.5, 0.25, 0.25
    np.testing.assert_allclose(line, np.column_stack([expected_x, expected_y]), atol=0.01)


def test_band_runs_along_the_75th_percentile_and_back_along_the_25th(dom):
    svg = regret_svg(dom, "ehrlich-4x4")
    _, y = axes(svg)
    ga = series(svg)["ga"]
    band = coordinates(ga.find("polygon").get("points"))
    expected = np.interp(GA_Q75 + GA_Q25[::-1], [0, 1], [y[0.0], y[1.0]])  # y is linear
    np.testing.assert_allclose(band[:, 1], expected, atol=0.01)


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
    heights = coordinates(ga.find("polyline").get("points"))[:, 1]
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


def test_fixed_target_tables_in_both_formats(markdown, dom):
    table = dom.find(".//table[@class='fixed-target']")
    assert table.get("data-problem") == "ehrlich-4x4"
    assert [th.text for th in table.iter("th")] == ["Optimizer", "value ≥ 0.5", "value ≥ 1"]
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert cells == [[SCRIPT, "∞ (0/3)", None], ["ga", "1,234 (3/5)", "∞ (0/5)"]]
    assert "| ga | 1,234 (3/5) | ∞ (0/5) |" in markdown
    assert len(dom.findall(".//table[@class='fixed-target']")) == 1  # tfbind_8 has no targets


def test_across_problems_table_and_cd_diagram(markdown, dom):
    table = dom.find(".//table[@class='across']")
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert cells == [["ga", "2 of 2", "0.250 [0.100, 0.400]", "1.00"],
                     ["random", "2 of 2", "1.000 [0.800, 1.000]", "2.00"],
                     [PIPE, "1 of 1", "0.430 [0.000, 0.860]", "—"],
                     [SCRIPT, "0 of 1", "—", "—"]]
    assert r"| a\|b | 1 of 1 | 0.430 [0.000, 0.860] | — |" in markdown
    diagram = dom.find(".//svg[@class='cd-diagram']")
    entries = [g for g in diagram.iter("g") if g.get("class") == "cd-entry"]
    assert [(g.get("data-optimizer"), g.get("data-rank")) for g in entries] == [
        ("ga", "1.000"), ("random", "2.000")]
    assert len([line for line in diagram.iter("line") if line.get("class") == "clique"]) == 1
    assert "Friedman's test needs at least 3 such optimizers and 2 problems" in markdown


def test_ranking_note_reports_friedman_and_the_critical_difference():
    summary = make_summary()
    summary.ranking = {"problems": 6, "entries": 4, "friedman_p": 0.0123,
                       "critical_difference": 1.915}
    note = ranking_note(summary)
    assert "over 6 problems and 4 optimizers: p = 0.012" in note and "CD = 1.92" in note


def test_cliques_are_maximal_runs_closer_than_the_critical_difference():
    assert cliques([1.0, 1.2, 2.5, 2.6, 4.0], 1.0) == [(0, 1), (2, 3)]
    assert cliques([1.0, 1.5, 1.9], 1.0) == [(0, 2)]  # (1, 2) lies inside (0, 2)
    assert cliques([1.0, 3.0], 1.0) == []


def test_verified_measures_tables_in_both_formats(markdown, dom):
    table = dom.find(".//table[@data-problem='ehrlich-4x4'][@class='verified']")
    cells = [[td.text for td in tr.findall("td")] for tr in table.find("tbody").findall("tr")]
    assert cells[0] == [PIPE, "0.750", "0.700", "0.350", "4.0 s", "2 CPUs, 1 torch thread"]
    assert cells[-1] == [SCRIPT, "—", "—", "—", "0.5 s", "2 CPUs, 1 torch thread"]
    assert r"| a\|b | 0.750 | 0.700 | 0.350 | 4.0 s | 2 CPUs, 1 torch thread |" in markdown
