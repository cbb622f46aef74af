"""From run folders to a verified store to the leaderboard files, through the command line."""

import json
import shutil
import subprocess
import sys

from holo_bench.trace import read_trace


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "holo_bench.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_collect_then_leaderboard_writes_html_and_markdown(tmp_path):
    runs, db = tmp_path / "runs", tmp_path / "store.sqlite"
    made = cli("run", "--optimizer", "ga", "--optimizer", "random", "--problem", "smoke_ehrlich_small",
               "--problem", "smoke_ehrlich_tiny", "--seeds", "0-2", "--budget", "2000", "--out", str(runs),
               "--quiet", "--workers", "1", "--set", "ga.num_particles=100", "--set", "random.batch_size=100")
    assert made.returncode == 0, made.stderr
    collected = cli("collect", str(runs), "--db", str(db))
    assert collected.returncode == 0 and "12 runs added" in collected.stdout
    assert "0 runs added or updated, 12 unchanged" in cli("collect", str(runs), "--db", str(db)).stdout
    board = cli("leaderboard", "--db", str(db), "--html", str(tmp_path / "site/index.html"),
                "--markdown", str(tmp_path / "site/leaderboard.md"))
    assert board.returncode == 0, board.stderr
    markdown = (tmp_path / "site/leaderboard.md").read_text()
    assert "## smoke\\_ehrlich\\_small" in markdown and "| ga " in markdown and "| random " in markdown
    html = (tmp_path / "site/index.html").read_text()
    assert html.count('class="leaderboard"') == 2 and 'class="ecdf"' in html


def test_submit_accepts_a_genuine_run_and_rejects_a_tampered_one(tmp_path):
    runs = tmp_path / "runs"
    cli("run", "--optimizer", "ga", "--problem", "f2", "--seeds", "0", "--budget", "1000", "--out", str(runs),
        "--quiet", "--set", "num_particles=100")
    folder = runs / "ga" / "f2" / "seed-0"
    accepted = cli("submit", str(folder))
    assert accepted.returncode == 0 and "accepted: ga on f2 seed 0, 1000 evaluations" in accepted.stdout

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    header, records = read_trace(tampered / "trace.bin")
    records = records.copy()
    records["value"][123] = 1.0
    text = (tampered / "trace.bin").read_bytes()
    (tampered / "trace.bin").write_bytes(text[: text.index(b"\n") + 1] + records.tobytes())
    rejected = cli("submit", str(tampered))
    assert rejected.returncode == 1
    assert "rejected (values): row 123 (call 1, index 23): logged value 1.0" in rejected.stderr

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["job"]["budget"] = 999
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    (edited / "manifest.json").write_text(json.dumps(manifest))
    result = cli("submit", str(edited))
    assert result.returncode == 1 and "rejected (budget)" in result.stderr
