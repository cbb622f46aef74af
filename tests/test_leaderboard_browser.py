"""The HTML leaderboard in a real headless Chromium: it loads cleanly, shows its tables and plots,
and shows markup inside an optimizer's name as text. Saves a screenshot for people to look at.

Needs Debian's chromium and chromium-driver, and selenium (the dev extra). Without them these
tests skip, except where ``HOLO_BENCH_REQUIRE_BROWSER`` is set, as ``.ci/run`` sets it: there a
missing browser fails them.
"""

import base64
import importlib.util
import os
from pathlib import Path

import pytest
from test_render import ABOUT_EHRLICH, SCRIPT, make_summary

from leaderboard.render import write_leaderboard

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--window-size=1280,900"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium showing the rendered leaderboard of ``make_summary()``."""
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

    folder = tmp_path_factory.mktemp("leaderboard")
    page = folder / "index.html"
    write_leaderboard(make_summary(), html_path=page)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={folder / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.get(page.as_uri())
        yield driver
    finally:
        driver.quit()


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


def test_verdict_tables_and_the_cd_diagram_are_shown(browser):
    """The fixed-target, verified-measures and across-problems tables and the critical
    difference diagram are laid out, visible, with the entries they name."""
    for selector, rows in [("table.fixed-target", 2), ("table.verified", 6), ("table.across", 4)]:
        tables = elements(browser, selector)
        assert tables and all(t.is_displayed() and t.size["width"] > 200 for t in tables)
        assert sum(len(elements(t, "tbody tr")) for t in tables) == rows
    [diagram] = elements(browser, "svg.cd-diagram")
    assert diagram.is_displayed() and diagram.size["width"] > 300
    entries = elements(diagram, "g.cd-entry")
    assert [e.get_attribute("data-optimizer") for e in entries] == ["ga", "random"]
    assert all(e.size["width"] > 0 for e in entries)
    assert len(elements(diagram, "line.clique")) == 1


def test_markup_in_a_name_is_shown_as_text_and_injects_nothing(browser):
    names = [td.text for td in elements(browser, "td.optimizer")]
    assert SCRIPT in names
    assert elements(browser, "script") == []
    legends = elements(browser, "svg .legend-entry text")
    assert SCRIPT in [text.get_attribute("textContent") for text in legends]


def test_screenshot_of_the_whole_page_is_saved(browser):
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": clip})
    path = Path(os.environ.get("HOLO_BENCH_ARTIFACTS", "test-artifacts/")) / "leaderboard.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
