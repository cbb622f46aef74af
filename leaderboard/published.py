"""The published leaderboard: the page, its markdown table, a regret-curve figure and the
README's ranked table, rendered from the archive alone (``leaderboard.archive``).

Rendering is deterministic (the page's date is the last archived run's, not the clock's), so CI
can check that the committed files are exactly what the archive renders: ``check_published``
names every file that is not.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from holo_bench.record import Manifest
from holo_bench.suite import on_track
from leaderboard.aggregate import Summary, summarize_store
from leaderboard.render import (
    ACROSS_COLUMNS,
    ACROSS_NUMERIC,
    STYLE,
    across_rows,
    colors,
    line_band_plot,
    markdown_table,
    ranking_note,
    ranking_result,
    render_html,
    render_markdown,
    series_by_optimizer,
)
from leaderboard.store import store_with_archive

TRACK = "standard"  # the track the page publishes
PAGE = Path("docs/leaderboard")
FIGURE_PROBLEM = "f2_family"  # the README's figure: its regret curves
README = Path("README.md")
START, END = "<!-- published-leaderboard:start -->", "<!-- published-leaderboard:end -->"


def summarize_archive(archive: str | os.PathLike, track: str | None = TRACK) -> Summary:
    """The leaderboard of the archive's records on ``track`` (None: all of them), dated by the
    last of their runs. An archive also holds other experiments' runs, such as the llome_f2
    track's GA charged for every query, which their own reports read."""
    shown = []  # the manifests loaded, noted as they are read (each record is read once)

    def keep(manifest: Manifest) -> bool:
        run = manifest.run
        if track is None or on_track(track, manifest.problem.spec, run.budget, run.count):
            shown.append(manifest)
            return True
        return False

    with store_with_archive(None, archive, keep) as db:
        summary = summarize_store(db)
    last = max((manifest.finished for manifest in shown), default=0.0)
    where = f" on the {track} track" if track else ""
    summary.generated = (f"from the {len(shown)} records of {str(archive).rstrip('/')}/{where}, "
                         f"whose last run finished on "
                         f"{time.strftime('%Y-%m-%d', time.gmtime(last))}")
    return summary


def figure(summary: Summary, problem: str) -> str:
    """A standalone SVG of ``problem``'s regret curves (median and 25-75% band), styled as on
    the page."""
    curves = summary.curves[summary.curves["problem"] == problem]
    if curves.empty:
        raise ValueError(f"the archive has no runs on {problem}, the README's figure")
    svg = line_band_plot(series_by_optimizer(curves, colors(summary), "median", ("q25", "q75")),
                         "regret-curve", f"best-so-far regret on {problem}",
                         "best-so-far regret")
    style = "\n".join(line for line in STYLE.splitlines() if line.startswith("svg"))
    head, _, rest = svg.partition("\n")
    head = head.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return f"{head}\n<style>\nsvg {{ background: #fff; font-family: sans-serif; }}\n{style}\n" \
           f"</style>\n{rest}\n"


def readme_section(summary: Summary, archive: str, problem: str) -> str:
    """The README's ranked table of the archive, with its figure, between the markers."""
    rows = across_rows(summary)
    lines = [START, "", "**Published results: the standard track.** "
             f"Ranked by average rank over the problems; made {summary.generated}. Every number "
             f"is checked by `holo-bench archive check {archive}/` (docs/leaderboard.md). The "
             "whole page: "
             f"[`{PAGE}/index.html`]({PAGE}/index.html), as markdown "
             f"[`{PAGE}/leaderboard.md`]({PAGE}/leaderboard.md).", "",
             *markdown_table(ACROSS_COLUMNS, ACROSS_NUMERIC, rows), "",
             ranking_note(summary), ranking_result(summary), "",
             f"![Best-so-far regret on {problem}: median and 25-75% band per optimizer]"
             f"({PAGE}/regret-curves.svg)", "", END]
    return "\n".join(lines)


def rendered(archive: str | os.PathLike, root: str | os.PathLike = ".",
             problem: str = FIGURE_PROBLEM, track: str | None = TRACK) -> dict[Path, str]:
    """Every published file (path under ``root``) and the text the archive's records on ``track``
    render for it; ``problem``'s regret curves are the README's figure."""
    root = Path(root)
    summary = summarize_archive(archive, track)
    readme = (root / README).read_text()
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise ValueError(f"{root / README} needs one {START} and one {END} line, where the "
                         "published table goes")
    before, _, rest = readme.partition(START)
    _, _, after = rest.partition(END)
    return {root / PAGE / "index.html": render_html(summary),
            root / PAGE / "leaderboard.md": render_markdown(summary),
            root / PAGE / "regret-curves.svg": figure(summary, problem),
            root / README: before + readme_section(summary, str(archive).rstrip("/"), problem)
            + after}


def write_published(archive: str | os.PathLike, root: str | os.PathLike = ".",
                    problem: str = FIGURE_PROBLEM, track: str | None = TRACK) -> list[Path]:
    """Render and write every published file; returns their paths."""
    files = rendered(archive, root, problem, track)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                         prefix=f".{path.name}.", delete=False) as file:
            file.write(text)
        os.chmod(file.name, 0o644)  # a page to serve, not a private temporary file
        os.replace(file.name, path)
    return list(files)


def check_published(archive: str | os.PathLike, root: str | os.PathLike = ".",
                    problem: str = FIGURE_PROBLEM, track: str | None = TRACK) -> list[Path]:
    """The published files that differ from what the archive renders (missing ones included)."""
    return [path for path, text in rendered(archive, root, problem, track).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]
