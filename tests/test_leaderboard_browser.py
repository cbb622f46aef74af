"""The HTML leaderboard in a real headless Chromium: it loads cleanly, shows its headline, legend,
tables and card-wide plots, says why there is no critical difference diagram (or shows it where
Friedman's test rejects), and shows markup inside an optimizer's name as text. Saves screenshots
for people to look at.

Needs Debian's chromium and chromium-driver, and selenium (the dev extra). Without them these
tests skip, except where ``HOLO_BENCH_REQUIRE_BROWSER`` is set, as ``.ci/run`` sets it: there a
missing browser fails them.
"""

import base64
import importlib.util
import os
from pathlib import Path

import pytest
from test_render import (
    ABOUT_EHRLICH,
    HEADLINE,
    NO_FRIEDMAN,
    PIPE,
    SCRIPT,
    make_ranked_summary,
    make_summary,
)

from leaderboard.render import write_leaderboard

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--window-size=1280,900"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The pages of ``make_summary()`` ("plain") and ``make_ranked_summary()`` ("ranked")."""
    folder = tmp_path_factory.mktemp("leaderboard")
    written = {"plain": folder / "index.html", "ranked": folder / "ranked.html"}
    write_leaderboard(make_summary(), html_path=written["plain"])
    write_leaderboard(make_ranked_summary(), html_path=written["ranked"])
    return written


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """Headless Chromium, one for the module."""
    missing = []
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing.append(f"{CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    if not importlib.util.find_spec("selenium"):
        missing.append("selenium (pip install -e '.[dev]', or bash scripts/install.sh)")
    if missing:
        needs = f"needs {'; '.join(missing)}"
        if os.environ.get("HOLO_BENCH_REQUIRE_BROWSER"):
            pytest.fail(f"HOLO_BENCH_REQUIRE_BROWSER is set, and this test {needs}", pytrace=False)
        pytest.skip(needs)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chromium = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield chromium
    finally:
        chromium.quit()


@pytest.fixture
def browser(driver, pages):
    """Chromium showing the leaderboard of ``make_summary()``: 2 optimizers ranked, no diagram."""
    driver.get(pages["plain"].as_uri())
    return driver


@pytest.fixture
def ranked_browser(driver, pages):
    """Chromium showing the leaderboard of ``make_ranked_summary()``: Friedman's test rejects."""
    driver.get(pages["ranked"].as_uri())
    return driver


def elements(node, selector):
    """Elements under a driver or element matching a CSS selector (``By.CSS_SELECTOR``'s value)."""
    return node.find_elements("css selector", selector)


def test_page_loads_without_console_errors(browser):
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []


def test_tables_show_ranked_rows_per_problem(browser):
    tables = elements(browser, "table.leaderboard")
    assert [t.get_attribute("data-problem") for t in tables] == ["ehrlich-4x4", "tfbind_8"]
    rows = [[td.text for td in elements(tr, "td")] for tr in elements(tables[0], "tbody tr")]
    assert rows[0] == ["a|b", "3", "5", "1,000", "free", "0.250 [0.000, 0.500]", "[0.000, 0.500]",
                       "300", "2/5", "0.200 [0.100, 0.300]", "no evidence (p=0.21)",
                       "better (p=0.012)"]
    assert [row[-2:] for row in rows[1:3]] == [["reference", "reference"],
                                               ["worse (p=0.031)", "worse (p=0.0042)"]]
    assert [row[0] for row in rows] == ["a|b", "ga", "random", SCRIPT]
    about = [p.text for p in elements(browser, "section.problem p.about")]
    assert about == [f"Instances: {ABOUT_EHRLICH}.", "Instances: rmf:L=8,seed=1."]


def test_plots_are_drawn_with_nonzero_size(browser):
    plots = elements(browser, "svg.regret-curve") + elements(browser, "svg.ecdf")
    for plot, optimizers in zip(plots, [4, 2, 4], strict=True):
        assert plot.size["width"] > 100 and plot.size["height"] > 100
        lines = elements(plot, "polyline.median")
        assert len(lines) == optimizers and all(line.size["width"] > 0 for line in lines)


def test_plots_fill_the_width_of_their_card(browser):
    cards = elements(browser, "section.problem") + elements(browser, "section.ecdf-section")
    plots = elements(browser, "svg.regret-curve") + elements(browser, "svg.ecdf")
    for card, plot in zip(cards, plots, strict=True):
        inner = browser.execute_script(
            "const style = getComputedStyle(arguments[0]); return arguments[0].clientWidth"
            " - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);", card)
        assert plot.size["width"] == pytest.approx(inner, abs=1)


def test_headline_and_legend_open_the_page(browser):
    [headline] = elements(browser, "p.headline")
    [legend] = elements(browser, "ul.legend")
    first_card = elements(browser, "section.problem")[0]
    assert headline.is_displayed() and headline.text == HEADLINE
    assert legend.is_displayed() and legend.location["y"] < first_card.location["y"]
    items = elements(legend, "li")
    assert [item.text.split(":")[0] for item in items] == ["Green row", "Plot lines",
                                                           "Shaded bands"]
    swatch = elements(legend, ".swatch.best")[0]
    best_row = elements(browser, "table.leaderboard tbody tr:first-child td")[0]
    assert swatch.size["width"] > 10 and swatch.size["height"] > 5
    assert (swatch.value_of_css_property("background-color")
            == best_row.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)")


def test_verdict_tables_and_the_line_saying_why_there_is_no_cd_diagram_are_shown(browser):
    """The fixed-target, verified-measures and across-problems tables are laid out, visible,
    with the entries they name; in place of the diagram, the line saying why there is none."""
    for selector, rows in [("table.fixed-target", 2), ("table.verified", 6), ("table.across", 4)]:
        tables = elements(browser, selector)
        assert tables and all(t.is_displayed() and t.size["width"] > 200 for t in tables)
        assert sum(len(elements(t, "tbody tr")) for t in tables) == rows
    assert elements(browser, "svg.cd-diagram") == []
    [line] = elements(browser, "section.across-section p.no-diagram")
    assert line.is_displayed() and line.text == NO_FRIEDMAN


def test_cd_diagram_and_its_legend_are_shown_where_friedmans_test_rejects(ranked_browser):
    [diagram] = elements(ranked_browser, "svg.cd-diagram")
    assert diagram.is_displayed() and diagram.size["width"] > 300
    entries = elements(diagram, "g.cd-entry")
    assert [e.get_attribute("data-optimizer") for e in entries] == ["ga", PIPE, "random"]
    assert all(e.size["width"] > 0 for e in entries)
    assert len(elements(diagram, "line.clique")) == 2
    [bar] = elements(diagram, "g.critical-difference")
    box, drawn = diagram.rect, bar.rect
    assert box["x"] <= drawn["x"] and drawn["x"] + drawn["width"] <= box["x"] + box["width"]
    [result] = elements(ranked_browser, "section.across-section p.ranking-result")
    assert result.is_displayed() and result.text.startswith("Friedman's test over 8 problems")
    assert elements(ranked_browser, "p.no-diagram") == []
    clique = elements(ranked_browser, "ul.legend li")[-1]
    assert clique.is_displayed() and clique.text.startswith("Thick black bars under the critical")
    save_screenshot(ranked_browser, "leaderboard-friedman-rejects.png")


def test_markup_in_a_name_is_shown_as_text_and_injects_nothing(browser):
    names = [td.text for td in elements(browser, "td.optimizer")]
    assert SCRIPT in names
    assert elements(browser, "script") == []
    legends = elements(browser, "svg .legend-entry text")
    assert SCRIPT in [text.get_attribute("textContent") for text in legends]


def save_screenshot(browser, name: str) -> Path:
    """The whole page as a PNG under ``HOLO_BENCH_ARTIFACTS`` (``test-artifacts/`` by default)."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": clip})
    path = Path(os.environ.get("HOLO_BENCH_ARTIFACTS", "test-artifacts/")) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_screenshot_of_the_whole_page_is_saved(browser):
    path = save_screenshot(browser, "leaderboard.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
