"""``holo-bench export``: every verified query as CSV, and IOHprofiler's format read back by its
documented structure (a JSON meta-data file per algorithm and function, and ``.dat`` files of
``evaluations raw_y`` blocks, one per run), against the traces."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.executors import run_grid
from harness.runner import make_job
from holo_bench.trace import read_trace
from leaderboard import load_runs
from leaderboard.export import export

FAMILY = "ehrlich:v=4,L=8,c=2,k=2,q=2"
HOSTILE = 'ga "quoted" \\ label'


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """ga and random on two instances of one family and on a small named instance, both counting
    rules, and a hostile label."""
    out = tmp_path_factory.mktemp("runs")
    params = {"ga": {"num_particles": 20}, "random": {"batch_size": 50}}
    jobs = [make_job(o, p, s, 300, out, params[o], count=count)
            for o in ("ga", "random") for p in (f"{FAMILY},seed=2", f"{FAMILY},seed=3",
                                                "smoke_ehrlich_small")
            for s in range(2) for count in ("distinct", "all")]
    jobs.append(make_job("ga", "smoke_ehrlich_small", 5, 300, out, params["ga"], label=HOSTILE))
    run_grid(jobs, workers=1, progress=False)
    return out


def runs_by_identity(root):
    return {identity: rows for identity, rows in load_runs(root).groupby("identity")}


def test_csv_holds_every_query_of_every_run(runs, tmp_path):
    report = export(runs, tmp_path / "q.csv", "csv")
    table = pd.read_csv(tmp_path / "q.csv", keep_default_na=False)
    expected = runs_by_identity(runs)
    assert sorted(report.exported) == sorted(expected) and len(expected) == 25
    assert len(table) == sum(len(rows) for rows in expected.values())
    for identity, rows in table.groupby("identity"):
        mine = expected[identity]
        for column in ("evaluation", "charged", "feasible", "value", "best_so_far", "regret"):
            np.testing.assert_array_equal(rows[column].to_numpy(), mine[column].to_numpy())
    # the sequences are the trace's, and a family's instances share its name
    folder = next(runs.rglob("manifest.json")).parent
    _, records = read_trace(folder / "trace.bin")
    identity = json.loads((folder / "manifest.json").read_text())["identity"]
    sequences = table[table.identity == identity]["sequence"]
    assert [list(map(int, s.split())) for s in sequences] == records["sequence"].tolist()
    assert set(table[table.spec.str.startswith(FAMILY)]["family"]) != set()
    assert HOSTILE in set(table["optimizer"])


def ioh_blocks(path):
    """The ``.dat`` file's runs: blocks that each start with the header line."""
    blocks = []
    for line in path.read_text().splitlines():
        if line == "evaluations raw_y":
            blocks.append([])
        else:
            evaluations, value = line.split()
            blocks[-1].append((int(evaluations), float(value)))
    return blocks


def improvements(records, worst):
    """(charged evaluations, value) at each strict improvement of the charged queries' values,
    an infeasible query counted as ``worst``: what IOH's improvement trigger must have logged;
    and the last charged query's value."""
    charged = records[records["charged"]]
    values = np.where(charged["feasible"], charged["value"], worst)
    best, steps = -np.inf, []
    for evaluation, value in enumerate(values, start=1):
        if value > best:
            best = value
            steps.append((evaluation, float(value)))
    return steps, float(values[-1])


def test_ioh_format_read_back_matches_every_run(runs, tmp_path):
    out = tmp_path / "ioh"
    report = export(runs, out, "ioh")
    manifests = {}
    for path in runs.rglob("manifest.json"):
        manifest = json.loads(path.read_text())
        manifests[manifest["identity"]] = (manifest, path.parent)
    assert sorted(report.exported) == sorted(manifests)
    metas = [(json.loads(path.read_text()), path.parent) for path in out.rglob("*.json")]
    # one file per (entry, problem): ga and random under two counting rules are four entries
    # (their labels are shared, so the entry names add the rule), and the hostile label a fifth
    assert len(metas) == 5 * 2 - 1
    seen = 0
    for meta, home in metas:
        assert meta["maximization"] is True and meta["attributes"] == ["evaluations", "raw_y"]
        [scenario] = meta["scenarios"]
        blocks = ioh_blocks(home / scenario["path"])  # relative to its meta-data file
        assert len(blocks) == len(scenario["runs"])
        mine = [(m, folder) for m, folder in manifests.values()
                if _entry(m) == meta["algorithm"]["name"]
                and _family(m) == meta["function_name"]]
        assert len(mine) == len(scenario["runs"])
        # runs are written ordered by instance spec, then seed
        mine.sort(key=lambda item: (item[0]["run"]["spec"], item[0]["run"]["seed"]))
        for (manifest, folder), run, block in zip(mine, scenario["runs"], blocks):
            _, records = read_trace(folder / "trace.bin")
            assert scenario["dimension"] == records["sequence"].shape[1]
            assert run["instance"] == int(manifest["run"]["spec"].rpartition("seed=")[2])
            assert run["evals"] == manifest["evaluations"]
            steps, last = improvements(records, manifest["problem"]["worst_value"])
            if steps[-1][0] != run["evals"]:  # IOH closes a run with its last evaluation's y
                steps.append((run["evals"], last))
            assert [e for e, _ in block] == [e for e, _ in steps]
            np.testing.assert_allclose([v for _, v in block], [v for _, v in steps],
                                       rtol=0, atol=1e-10)  # written with 10 decimals
            best = max(value for _, value in steps)
            assert run["best"]["y"] == pytest.approx(best, rel=0, abs=1e-10)
            assert best == max(manifest["best_value"], manifest["problem"]["worst_value"])
            seen += 1
    assert seen == 25


def _entry(manifest):
    """The entry names the export gives: label, plus the counting rule where a label has two."""
    label = manifest["label"].replace('"', "'").replace("\\", "/")
    return label if manifest["label"] == HOSTILE else f"{label} [count={manifest['run']['count']}]"


def _family(manifest):
    spec = manifest["run"]["spec"]
    return FAMILY if spec.startswith(FAMILY) else manifest["run"]["problem"]


def test_rejected_and_duplicate_runs_are_reported_never_exported(runs, tmp_path, capsys):
    root = tmp_path / "runs"
    folders = sorted(path.parent for path in runs.rglob("manifest.json"))[:2]
    shutil.copytree(folders[0], root / "genuine")
    shutil.copytree(folders[0], root / "copy")
    shutil.copytree(folders[1], root / "tampered")
    manifest = json.loads((root / "tampered" / "manifest.json").read_text())
    manifest["best_value"] -= 0.125
    (root / "tampered" / "manifest.json").write_text(json.dumps(manifest))
    assert main(["export", str(root), "--format", "csv", "--out", str(tmp_path / "q.csv")]) == 1
    captured = capsys.readouterr()
    assert "1 run exported" in captured.out and "1 duplicate," in captured.out
    assert "REJECTED" in captured.err and "tampered" in captured.err
    assert pd.read_csv(tmp_path / "q.csv")["identity"].nunique() == 1


def test_bad_requests_are_refused_with_the_reason(runs, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export(runs, tmp_path / "x", "xml")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    with pytest.raises(ValueError, match="not empty"):
        export(runs, tmp_path / "full", "ioh")
    with pytest.raises(ValueError, match="no verified finished runs"):
        export(tmp_path / "full", tmp_path / "q.csv", "csv")


@pytest.mark.parametrize("format, target, message", [
    ("csv", "folder", "is a folder; the CSV export writes one file"),
    ("csv", "file", "exists; give a new file, or --force to overwrite it"),
    ("ioh", "file", "is a file; the IOH export writes a folder"),
    ("ioh", "full folder", "exists and is not empty"),
])
def test_a_bad_target_is_refused_in_one_line_before_any_run_is_verified(runs, tmp_path, capsys,
                                                                        monkeypatch, format,
                                                                        target, message):
    out = tmp_path / "target"
    if target == "file":
        out.write_text("keep me")
    else:
        out.mkdir()
        if target == "full folder":
            (out / "old.json").write_text("{}")
    before = sorted((path.name, path.read_bytes()) for path in tmp_path.rglob("*")
                    if path.is_file())

    def never(folder):
        raise AssertionError("a run was verified before the target was checked")

    monkeypatch.setattr("leaderboard.export.verify_run", never)
    assert main(["export", str(runs), "--format", format, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"holo-bench: error: --out {out} {message}" + err.split(message)[1]
    assert len(err.strip().splitlines()) == 1
    assert sorted((path.name, path.read_bytes()) for path in tmp_path.rglob("*")
                  if path.is_file()) == before


def test_force_overwrites_an_existing_csv(runs, tmp_path):
    (tmp_path / "q.csv").write_text("old")
    assert main(["export", str(runs), "--format", "csv", "--out", str(tmp_path / "q.csv"),
                 "--force"]) == 0
    assert pd.read_csv(tmp_path / "q.csv")["identity"].nunique() > 1
