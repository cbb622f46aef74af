"""From run folders to a verified store to the leaderboard files, through the command line, and
the command line's answer to bad input: one line naming the argument, exit status 2, nothing run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from holo_bench.record import find_runs, read_manifest
from holo_bench.trace import read_trace
from optimizers.registry import available

TESTS = str(Path(__file__).parent)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={"PYTHONPATH": TESTS, "PATH": ""})


def in_process(*args) -> int:
    """``main`` in this process (argparse's own errors exit): the exit status."""
    try:
        return main(list(args))
    except SystemExit as exit:
        return exit.code


def test_collect_then_leaderboard_writes_html_and_markdown(tmp_path):
    runs, db = tmp_path / "runs", tmp_path / "store.sqlite"
    made = cli("run", "--optimizer", "ga", "--optimizer", "random",
               "--problem", "smoke_ehrlich_small", "--problem", "smoke_ehrlich_tiny",
               "--seeds", "0-2", "--budget", "2000", "--out", str(runs), "--quiet",
               "--workers", "1", "--set", "ga.num_particles=100",
               "--set", "random.batch_size=100", "--no-archive")
    assert made.returncode == 0, made.stderr
    # the run itself ends with a page of every run under --out: 3 seeds decide nothing
    assert f"leaderboard: {runs / 'leaderboard.html'}" in made.stdout
    page = (runs / "leaderboard.html").read_text()
    assert page.count('class="leaderboard"') == 2 and page.count('class="fixed-target"') == 2
    assert page.count("no evidence (p=") == 4 and "better (p=" not in page
    collected = cli("collect", str(runs), "--db", str(db))
    assert collected.returncode == 0 and "12 runs added" in collected.stdout
    assert "0 runs added, 12 unchanged" in cli("collect", str(runs), "--db", str(db)).stdout
    board = cli("leaderboard", "--db", str(db), "--no-archive",
                "--html", str(tmp_path / "site/index.html"),
                "--markdown", str(tmp_path / "site/leaderboard.md"))
    assert board.returncode == 0, board.stderr
    markdown = (tmp_path / "site/leaderboard.md").read_text()
    assert ("## smoke\\_ehrlich\\_small" in markdown and "| ga " in markdown
            and "| random " in markdown)
    html = (tmp_path / "site/index.html").read_text()
    assert html.count('class="leaderboard"') == 2 and 'class="ecdf"' in html


def test_submit_accepts_a_genuine_run_and_rejects_a_tampered_one(tmp_path):
    runs = tmp_path / "runs"
    cli("run", "--optimizer", "ga", "--problem", "f2", "--seeds", "0", "--budget", "1000",
        "--out", str(runs), "--quiet", "--set", "num_particles=100", "--count", "all",
        "--no-page")
    [folder] = find_runs(runs)
    assert not (runs / "leaderboard.html").exists()
    accepted = cli("submit", str(folder))
    assert accepted.returncode == 0
    assert "accepted: ga on f2 seed 0, 1000 evaluations (count=all)" in accepted.stdout

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
    manifest["evaluations"] = 999
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    (edited / "manifest.json").write_text(json.dumps(manifest))
    result = cli("submit", str(edited))
    assert result.returncode == 1 and "rejected (budget)" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["run", "--seeds", "5-2"], "argument --seeds: bad seed range '5-2'"),
    (["run", "--seeds", "1,1"], "argument --seeds: seed list '1,1' names a seed twice"),
    (["run", "--budget", "-1"], "argument --budget: must be a positive integer, got '-1'"),
    (["run", "--count", "some"], "argument --count: invalid choice: 'some'"),
    (["run", "--set", "ga.foo=1"],
     "argument --set: optimizer ga has no parameter 'foo'"),
    (["run", "--set", "foo=1"],
     "argument --set: foo=1: no optimizer of this grid (ga, random) has"),
    (["run", "--set", "ga.num_particles=many"],
     "argument --set: optimizer ga: parameter num_particles must be an integer, got 'many'"),
    (["run", "--set", "oops"], "argument --set: expected name=value in --set, got 'oops'"),
    (["run", "--optimizer", "gaa"],
     "argument --optimizer: unknown optimizer 'gaa' (did you mean ga?)"),
    (["run", "--problem", "ehrlich:v=32,L=abc"], "argument --problem: parameter value 'abc'"),
    (["run", "--problem", "rmf:L=8,noise=0.1", "--count", "distinct"],
     "argument --count: count 'distinct' on a noisy"),
    (["run", "--optimizer", "ga", "--optimizer", "random", "--label", "x"],
     "--label names the runs of a single --optimizer"),
    (["run", "--problem", "f2_famly"], "argument --problem: unknown problem 'f2_famly' (did you "
     "mean f2_family, ehr_l128_family?): give an instance, family or suite name (`holo-bench "
     "list` shows them)"),
    (["run", "--problem", "F2"], "unknown problem 'F2' (did you mean f2?)"),
    (["run", "--problem", "f2", "--problem", "f2"], "argument --problem: 'f2' and 'f2' are one "
     "instance (ehrlich:v=32,L=32,c=4,k=4,q=4,seed=50494); name each instance once"),
    (["run", "--problem", "f2", "--problem", "f2_family"],
     "'f2' and 'ehrlich:v=32,L=32,c=4,k=4,q=4,seed=50494' are one instance"),
])
def test_bad_run_arguments_get_one_line_before_anything_runs(tmp_path, capsys, args, message):
    assert in_process(*args, "--out", str(tmp_path / "runs"), "--quiet") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err, err
    assert err.startswith("holo-bench: error: ")  # one prefix, whichever part refused it
    assert not (tmp_path / "runs").exists()  # no job started, no folder made


def test_collect_and_leaderboard_on_what_is_not_there_get_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("just text " * 100)
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for args, message in [
        (["collect", str(tmp_path / "missing"), "--db", str(tmp_path / "a.sqlite")],
         "is not a folder of run folders"),
        (["collect", str(tmp_path), "--db", str(tmp_path / "a.sqlite")], "holds no run folders"),
        (["leaderboard", "--db", str(tmp_path / "missing.sqlite")], "no results store at"),
        (["leaderboard", "--db", str(junk)], "is not a holo-bench results store"),
        (["submit", str(tmp_path / "missing")], "is not a folder"),
        (["leaderboard", "--db", str(empty), "--html", str(tmp_path / "e.html")],
         "is empty, not a results store"),
    ]:
        assert in_process(*args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
    assert empty.stat().st_size == 0  # nothing written into it
    assert not (tmp_path / "a.sqlite").exists() and not (tmp_path / "e.html").exists()


def test_list_names_every_optimizer_with_its_defaults_and_the_other_routes(capsys):
    assert in_process("list", "optimizers") == 0
    out = capsys.readouterr().out
    for name in available():
        assert f"\n  {name} " in out
    assert "LLOME trained every round with the MargE loss" in out
    assert "num_particles=1000, mutation_prob=None, recombine_prob=0.5" in out
    assert "\n  ng:NAME " in out and "\n  module:Class " in out
    assert "suites:" not in out
    assert in_process("list") == 0
    both = capsys.readouterr().out
    assert "suites:" in both and "optimizers (--optimizer NAME" in both


def test_help_is_plain_text():
    assert "``" not in build_parser().format_help()


def test_a_failed_run_never_blocks_the_corrected_command(tmp_path):
    runs = tmp_path / "runs"
    common = ["run", "--optimizer", "misbehaving:Scripted", "--problem", "smoke_ehrlich_small",
              "--seeds", "0", "--budget", "100", "--out", str(runs), "--quiet"]
    failed = cli(*common, "--set", "fault=raise", "--set", "at=2")
    assert failed.returncode == 1 and "optimizer blew up" in failed.stderr
    fixed = cli(*common, "--set", "fault=none")
    assert fixed.returncode == 0, fixed.stderr
    statuses = sorted(read_manifest(folder).status for folder in find_runs(runs))
    assert statuses == ["failed", "finished"]  # two configurations, two folders
