"""verify_run accepts genuine runs and rejects every kind of tampering, naming the check and row."""

import json
import shutil

import numpy as np
import pytest

from holo_bench import make_function
from holo_bench.runner import Job, run_job
from leaderboard.verify import RunRejected, verify_run

PROBLEM = "smoke_ehrlich_small"
GA = {"num_particles": 50}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Genuine run folders, made once: a GA that spends its budget, a GA that solves the problem,
    random search in batches of 64, and a GA on Rough Mount Fuji."""
    out = tmp_path_factory.mktemp("runs")
    jobs = {
        "ga": Job("ga", PROBLEM, 1, 2000, str(out), params=GA),
        "ga_solved": Job("ga", PROBLEM, 0, 2000, str(out), params=GA),
        "random": Job("random", PROBLEM, 0, 300, str(out), params={"batch_size": 64}),
        "rmf": Job("ga", "smoke_rmf", 0, 2000, str(out), params=GA),
    }
    manifests = {name: run_job(job) for name, job in jobs.items()}
    # The fixtures are what the tests below assume; fail loudly here if the runs ever change.
    assert manifests["ga"]["stop_reason"] == "budget" and manifests["ga"]["calls"] == 40
    assert manifests["ga_solved"]["stop_reason"] == "solved"
    assert manifests["random"]["stop_reason"] == "budget" and manifests["random"]["calls"] == 5
    assert all(m["status"] == "finished" for m in manifests.values())
    return {name: job.folder for name, job in jobs.items()}


@pytest.fixture
def copy(runs, tmp_path):
    """A fresh copy of a genuine run folder, to tamper with."""
    def make(name):
        return shutil.copytree(runs[name], tmp_path / name)
    return make


# -- reading and rewriting a run folder, independently of the code under test -------------------

def read_records(folder):
    """The trace's header line (bytes, newline included) and its records, writable."""
    data = (folder / "trace.bin").read_bytes()
    end = data.index(b"\n") + 1
    header = json.loads(data[:end])
    dim, tokens = header["dim"], np.dtype(header["token_dtype"])
    dtype = np.dtype([("call", "<i8"), ("size", "<i8"), ("index", "<i8"), ("value", "<f8"),
                      ("feasible", "?"), ("time", "<f8"), ("sequence", tokens, (dim,))])
    return data[:end], np.frombuffer(data[end:], dtype=dtype).copy()


def write_records(folder, header, records):
    (folder / "trace.bin").write_bytes(header + records.tobytes())


def edit_manifest(folder, edit):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def rejected(folder, check, row=None):
    with pytest.raises(RunRejected) as info:
        verify_run(folder)
    assert (info.value.check, info.value.row) == (check, row), str(info.value)
    assert str(info.value).startswith(f"rejected ({check}): ")
    return info.value


# -- genuine runs pass ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ga", "ga_solved", "random", "rmf"])
def test_genuine_runs_pass(runs, name):
    verified = verify_run(runs[name])
    manifest = json.loads((runs[name] / "manifest.json").read_text())
    assert verified.manifest == manifest
    assert len(verified.records) == manifest["evaluations"]


def test_returned_records_are_the_trace(runs):
    _, records = read_records(runs["ga"])
    verified = verify_run(runs["ga"]).records
    assert verified.tobytes() == records.tobytes()


def test_a_run_with_no_feasible_value_and_a_seed_of_zero_passes(tmp_path):
    # A uniform sequence of 128 tokens crosses 127 transitions, each banned with odds 12/32.
    job = Job("random", "ehr_v-32_l-128_m-4_c-4_q-4", 0, 5, str(tmp_path), params={"batch_size": 5})
    manifest = run_job(job)
    assert manifest["best_value"] == -np.inf and manifest["regret"] == 1.0
    verify_run(job.folder)


# -- values: every logged value and flag is re-scored ----------------------------------------

def test_changed_value_is_rejected_at_its_row(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    old = records["value"][17]
    records["value"][17] = 0.5 if old != 0.5 else 0.25
    write_records(folder, header, records)
    error = rejected(folder, "values", 17)
    assert f"row 17 (call 0, index 17): logged value {records['value'][17].item()!r} but the " \
        f"sequence scores {old.item()!r}" in str(error)


def test_flipped_feasible_flag_is_rejected_at_its_row(copy):
    folder = copy("random")
    header, records = read_records(folder)
    records["feasible"][100] = ~records["feasible"][100]
    write_records(folder, header, records)
    error = rejected(folder, "values", 100)
    assert "row 100 (call 1, index 36)" in str(error) and "feasible flag" in str(error)


def test_forged_flag_byte_is_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    row = int(np.flatnonzero(records["feasible"])[0])
    records["feasible"].view(np.uint8)[row] = 2  # truthy, but not a flag the oracle writes
    write_records(folder, header, records)
    rejected(folder, "values", row)


def test_sequence_whose_logged_value_no_longer_matches_is_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    f = make_function(PROBLEM)
    values = f(records["sequence"])
    row = 60
    other = int(np.flatnonzero(values != values[row])[0])
    records["sequence"][row] = records["sequence"][other]
    write_records(folder, header, records)
    rejected(folder, "values", row)


def test_out_of_range_token_is_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    records["sequence"][5, 3] = 8  # smoke_ehrlich_small has 8 states: tokens 0..7
    write_records(folder, header, records)
    rejected(folder, "values", 5)


# -- budget --------------------------------------------------------------------------------------

def append_evaluation(records, call):
    """One more genuinely scored record, as call ``call`` of size 1."""
    extra = records[:1].copy()
    extra["call"], extra["size"], extra["index"] = call, 1, 0
    return np.concatenate([records, extra])


def test_evaluation_past_the_budget_is_rejected_even_with_a_matching_manifest(copy):
    folder = copy("random")
    header, records = read_records(folder)
    write_records(folder, header, append_evaluation(records, 5))
    edit_manifest(folder, lambda m: m.update(evaluations=301, calls=6))
    rejected(folder, "budget", 300)


def test_evaluation_past_the_budget_is_rejected(copy):
    folder = copy("random")
    header, records = read_records(folder)
    write_records(folder, header, append_evaluation(records, 5))
    rejected(folder, "budget", 300)


def test_evaluation_the_manifest_does_not_count_is_rejected(copy):
    folder = copy("ga_solved")
    header, records = read_records(folder)
    calls = int(records["call"][-1]) + 1
    write_records(folder, header, append_evaluation(records, calls))
    error = rejected(folder, "budget", None)
    assert f"the trace logs {len(records) + 1} evaluations" in str(error)


def test_budget_lowered_below_the_evaluations_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["job"].update(budget=1990))
    rejected(folder, "budget", 1990)


def test_calls_miscounted_in_the_manifest_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(calls=39))
    rejected(folder, "budget", None)


# -- manifest ------------------------------------------------------------------------------------

def test_missing_manifest_is_rejected(copy):
    folder = copy("ga")
    (folder / "manifest.json").unlink()
    rejected(folder, "manifest")


def test_manifest_that_is_not_json_is_rejected(copy):
    folder = copy("ga")
    (folder / "manifest.json").write_text("{not json")
    rejected(folder, "manifest")


@pytest.mark.parametrize("field", ["regret", "best_value", "optimizer", "versions", "stop_reason"])
def test_removed_field_is_rejected(copy, field):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.pop(field))
    error = rejected(folder, "manifest")
    assert f"missing field {field!r}" in str(error)


def test_removed_nested_field_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["job"].pop("seed"))
    assert "missing field 'job.seed'" in str(rejected(folder, "manifest"))


def test_failed_run_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(status="failed"))
    assert "status 'failed'" in str(rejected(folder, "manifest"))


@pytest.mark.parametrize("edit", [
    lambda m: m.update(schema=2),
    lambda m: m.update(label=""),
    lambda m: m["job"].update(budget=0),
    lambda m: m["job"].update(budget=2000.0),
    lambda m: m["job"].update(seed=-1),
    lambda m: m["job"].update(seed=True),
    lambda m: m.update(evaluations="2000"),
    lambda m: m.update(stop_reason="timeout"),
    lambda m: m.update(error={"type": "RuntimeError", "message": "boom"}),
    lambda m: m["optimizer"].update(name="random"),
], ids=["schema", "label", "budget-zero", "budget-float", "seed-negative", "seed-bool",
        "evaluations-text", "stop-reason", "error", "optimizer-name"])
def test_malformed_manifest_is_rejected(copy, edit):
    folder = copy("ga")
    edit_manifest(folder, edit)
    rejected(folder, "manifest")


# -- problem -------------------------------------------------------------------------------------

@pytest.mark.parametrize("run,edit", [
    ("ga", lambda m: m["problem"].update(spec="ehrlich:v=8,L=16,c=2,k=4,q=4,seed=2")),
    ("rmf", lambda m: m["problem"].update(worst_value=-4.0)),
    ("ga", lambda m: m["job"].update(problem="smoke_ehrlich_tiny")),
    ("ga", lambda m: m["problem"].update(spec="sphere:L=16")),
], ids=["spec-of-another-seed", "worst-value", "job-of-another-problem", "unknown-function"])
def test_manifest_of_another_problem_is_rejected(copy, run, edit):
    folder = copy(run)
    edit_manifest(folder, edit)
    rejected(folder, "problem")


def test_changed_optimal_value_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["problem"].update(optimal_value=0.75))
    assert "problem.optimal_value 0.75" in str(rejected(folder, "problem"))


# -- trace ---------------------------------------------------------------------------------------

def test_missing_trace_is_rejected(copy):
    folder = copy("ga")
    (folder / "trace.bin").unlink()
    rejected(folder, "trace")


def test_record_cut_short_is_rejected(copy):
    folder = copy("ga")
    path = folder / "trace.bin"
    path.write_bytes(path.read_bytes()[:-10])
    assert "trailing bytes" in str(rejected(folder, "trace", 1999))


def test_torn_last_batch_is_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    write_records(folder, header, records[:-20])  # call 39 keeps 30 of its 50 records
    assert "torn batch" in str(rejected(folder, "trace", 1950))


def test_trace_of_another_spec_is_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    forged = json.loads(header)
    forged["spec"] = "ehrlich:v=8,L=16,c=2,k=4,q=4,seed=2"
    write_records(folder, (json.dumps(forged, sort_keys=True) + "\n").encode(), records)
    assert "spec" in str(rejected(folder, "trace", None))


def test_calls_out_of_order_are_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    swapped = np.concatenate([records[:50], records[100:150], records[50:100], records[150:]])
    write_records(folder, header, swapped)
    assert "call number 2 where call 1 was expected" in str(rejected(folder, "trace", 50))


def test_records_reordered_within_a_call_are_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    records[[70, 71]] = records[[71, 70]]
    write_records(folder, header, records)
    rejected(folder, "trace", 70)


def test_call_with_a_wrong_size_is_rejected(copy):
    folder = copy("ga")
    header, records = read_records(folder)
    records["size"][120] = 51
    write_records(folder, header, records)
    rejected(folder, "trace", 120)


# -- best ----------------------------------------------------------------------------------------

def best_row(records):
    """The first row holding the best feasible value, by a plain scan."""
    best, row = -np.inf, None
    for i, record in enumerate(records):
        if record["feasible"] and record["value"] > best:
            best, row = record["value"], i
    return row


def test_changed_best_value_is_rejected_at_the_true_best(copy):
    folder = copy("ga")
    _, records = read_records(folder)
    edit_manifest(folder, lambda m: m.update(best_value=1.0))
    rejected(folder, "best", best_row(records))


def test_changed_regret_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(regret=0.0))
    rejected(folder, "best", None)


def test_changed_rough_mount_fuji_best_is_rejected(copy):
    folder = copy("rmf")
    _, records = read_records(folder)
    edit_manifest(folder, lambda m: m.update(best_value=m["best_value"] + 1e-15))
    rejected(folder, "best", best_row(records))


# -- status --------------------------------------------------------------------------------------

def test_budget_run_claiming_solved_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(stop_reason="solved"))
    rejected(folder, "status", None)


def test_budget_run_claiming_optimizer_done_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(stop_reason="optimizer-done"))
    rejected(folder, "status", None)


def test_solved_run_claiming_budget_is_rejected(copy):
    folder = copy("ga_solved")
    edit_manifest(folder, lambda m: m.update(stop_reason="budget"))
    rejected(folder, "status", None)


def test_run_going_on_after_solving_is_rejected_at_the_first_optimum(copy):
    folder = copy("ga_solved")
    header, records = read_records(folder)
    last_call = records[records["call"] == records["call"][-1]].copy()
    last_call["call"] += 1
    write_records(folder, header, np.concatenate([records, last_call]))
    edit_manifest(folder, lambda m: m.update(evaluations=len(records) + len(last_call),
                                             calls=m["calls"] + 1))
    first = int(np.flatnonzero(records["value"] == 1.0)[0])
    rejected(folder, "status", first)
