"""verify_run accepts genuine runs and rejects every kind of tampering, naming the check and row."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from harness.runner import make_job, run_job
from holo_bench import make_function
from holo_bench.record import read_manifest
from leaderboard.verify import RunRejected, verify_run

PROBLEM = "smoke_ehrlich_small"
GA = {"num_particles": 50}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Genuine run folders, made once: a GA that spends its budget charging every query, the same
    GA under count "distinct", a GA that solves the problem, random search in batches of 64, and
    a GA on Rough Mount Fuji."""
    out = tmp_path_factory.mktemp("runs")
    jobs = {
        "ga": make_job("ga", PROBLEM, 1, 2000, out, GA, count="all"),
        "ga_distinct": make_job("ga", PROBLEM, 1, 2000, out, GA, count="distinct"),
        "ga_solved": make_job("ga", PROBLEM, 0, 2000, out, GA, count="all"),
        "random": make_job("random", PROBLEM, 0, 300, out, {"batch_size": 64}, count="all"),
        "rmf": make_job("ga", "smoke_rmf", 0, 2000, out, GA, count="all"),
    }
    manifests = {name: run_job(job) for name, job in jobs.items()}
    # The fixtures are what the tests below assume; fail loudly here if the runs ever change.
    assert manifests["ga"].stop_reason == "budget" and manifests["ga"].calls == 40
    assert manifests["ga_distinct"].stop_reason == "budget"
    assert manifests["ga_distinct"].queries > manifests["ga_distinct"].evaluations == 2000
    assert manifests["ga_solved"].stop_reason == "solved"
    assert manifests["random"].stop_reason == "budget" and manifests["random"].calls == 5
    assert all(m.status == "finished" for m in manifests.values())
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
                      ("feasible", "?"), ("charged", "?"), ("time", "<f8"),
                      ("sequence", tokens, (dim,))])
    return data[:end], np.frombuffer(data[end:], dtype=dtype).copy()


def write_records(folder, header, records):
    (folder / "trace.bin").write_bytes(header + records.tobytes())


def edit_manifest(folder, edit, rehash=False):
    """Apply ``edit`` to the manifest's JSON; with ``rehash``, also forge a matching identity."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    if rehash:
        run = manifest["run"]
        key = {name: run[name]
               for name in ("spec", "optimizer", "params", "seed", "budget", "count")}
        text = json.dumps(key, sort_keys=True, separators=(",", ":"))
        manifest["identity"] = hashlib.sha256(text.encode()).hexdigest()
    path.write_text(json.dumps(manifest))


def rejected(folder, check, row=None):
    with pytest.raises(RunRejected) as info:
        verify_run(folder)
    assert (info.value.check, info.value.row) == (check, row), str(info.value)
    assert str(info.value).startswith(f"rejected ({check}): ")
    return info.value


# -- genuine runs pass ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ga", "ga_distinct", "ga_solved", "random", "rmf"])
def test_genuine_runs_pass(runs, name):
    verified = verify_run(runs[name])
    manifest = read_manifest(runs[name])
    assert verified.manifest == manifest
    assert len(verified.records) == manifest.queries
    assert verified.records["charged"].sum() == manifest.evaluations


def test_returned_records_are_the_trace(runs):
    _, records = read_records(runs["ga"])
    verified = verify_run(runs["ga"]).records
    assert verified.tobytes() == records.tobytes()


def test_a_run_with_no_feasible_value_and_a_seed_of_zero_passes(tmp_path):
    # A uniform sequence of 128 tokens crosses 127 transitions, each banned with odds 12/32.
    job = make_job("random", "ehr_v-32_l-128_m-4_c-4_q-4", 0, 5, tmp_path, {"batch_size": 5})
    manifest = run_job(job)
    assert manifest.best_value == -np.inf and manifest.regret == 1.0
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
    extra = records[:1].copy()
    extra["call"], extra["size"], extra["index"] = 5, 1, 0
    extra["sequence"] = np.arange(16) % 8  # a sequence the run never asked: a charged one
    extra["value"] = make_function(PROBLEM)(extra["sequence"])
    extra["feasible"] = extra["value"] > -np.inf
    write_records(folder, header, np.concatenate([records, extra]))
    edit_manifest(folder, lambda m: m.update(evaluations=301, queries=301, calls=6))
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
    assert f"the trace charges {len(records) + 1} evaluations" in str(error)


def test_budget_lowered_below_the_evaluations_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["run"].update(budget=1990), rehash=True)
    rejected(folder, "budget", 1990)


def test_budget_changed_without_the_identity_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["run"].update(budget=5000))
    assert "is not the hash of run" in str(rejected(folder, "manifest"))


# -- charges: recomputed from the counting rule ---------------------------------------------------

def test_hidden_charge_is_rejected_at_its_row(copy):
    """Under count "all" every query is charged: a free one hides an evaluation."""
    folder = copy("ga")
    header, records = read_records(folder)
    records["charged"][77] = False
    write_records(folder, header, records)
    assert "every query is charged" in str(rejected(folder, "charges", 77))


def test_forged_free_repeat_of_a_sequence_never_evaluated_is_rejected(copy):
    folder = copy("ga_distinct")
    header, records = read_records(folder)
    row = int(np.flatnonzero(records["charged"])[-1])  # a genuine first evaluation
    records["charged"][row] = False
    write_records(folder, header, records)
    assert "never evaluated before" in str(rejected(folder, "charges", row))


def test_repeat_charged_under_distinct_is_rejected(copy):
    folder = copy("ga_distinct")
    header, records = read_records(folder)
    row = int(np.flatnonzero(~records["charged"])[0])
    records["charged"][row] = True
    write_records(folder, header, records)
    assert ("a repeat of a sequence already evaluated is free"
            in str(rejected(folder, "charges", row)))


def test_counting_rule_changed_in_the_manifest_is_rejected(copy):
    folder = copy("ga_distinct")
    edit_manifest(folder, lambda m: m["run"].update(count="all"), rehash=True)
    assert "count ('distinct', expected 'all')" in str(rejected(folder, "trace"))


@pytest.mark.parametrize("field,value", [("calls", 39), ("queries", 1999), ("evaluations", 1999)])
def test_counts_miscounted_in_the_manifest_are_rejected(copy, field, value):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update({field: value}))
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


@pytest.mark.parametrize("field", ["identity", "run", "optimizer_class", "versions", "hardware"])
def test_removed_field_is_rejected(copy, field):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.pop(field))
    assert f"missing field {field!r}" in str(rejected(folder, "manifest"))


@pytest.mark.parametrize("field", ["regret", "best_value", "stop_reason", "evaluations"])
def test_removed_outcome_of_a_finished_run_is_rejected(copy, field):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.pop(field))
    assert f"a finished run needs {field}" in str(rejected(folder, "manifest"))


def test_removed_nested_field_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["run"].pop("seed"))
    assert "missing field 'run.seed'" in str(rejected(folder, "manifest"))


def test_manifest_of_schema_1_is_refused_with_the_way_forward(copy):
    folder = copy("ga")
    (folder / "manifest.json").write_text(
        json.dumps({"schema": 1, "job": {}, "status": "finished"}))
    error = str(rejected(folder, "manifest"))
    assert "schema 1" in error and "rerun the job" in error


def test_failed_run_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(status="failed"))
    assert "status 'failed'" in str(rejected(folder, "manifest"))


@pytest.mark.parametrize("edit", [
    lambda m: m.update(schema=3),
    lambda m: m.update(label=""),
    lambda m: m["run"].update(budget=0),
    lambda m: m["run"].update(budget=2000.0),
    lambda m: m["run"].update(seed=-1),
    lambda m: m["run"].update(seed=True),
    lambda m: m["run"].update(count="some"),
    lambda m: m.update(evaluations="2000"),
    lambda m: m.update(stop_reason="timeout"),
    lambda m: m.update(error={"type": "RuntimeError", "message": "boom"}),
    lambda m: m["run"].update(optimizer="random"),
    lambda m: m.update(unexpected=1),
], ids=["schema", "label", "budget-zero", "budget-float", "seed-negative", "seed-bool", "count",
        "evaluations-text", "stop-reason", "error", "optimizer", "unknown-field"])
def test_malformed_manifest_is_rejected(copy, edit):
    folder = copy("ga")
    edit_manifest(folder, edit)
    rejected(folder, "manifest")


# -- problem -------------------------------------------------------------------------------------

def respec(spec):
    def edit(m):
        m["problem"]["spec"] = m["run"]["spec"] = spec
    return edit


def rename(name):
    def edit(m):
        m["problem"]["name"] = m["run"]["problem"] = name
    return edit


@pytest.mark.parametrize("run,edit", [
    ("ga", respec("ehrlich:v=8,L=16,c=2,k=4,q=4,seed=2")),
    ("rmf", lambda m: m["problem"].update(worst_value=-4.0)),
    ("ga", rename("smoke_ehrlich_tiny")),
    ("ga", respec("sphere:L=16")),
], ids=["spec-of-another-seed", "worst-value", "named-as-another-problem", "unknown-function"])
def test_manifest_of_another_problem_is_rejected(copy, run, edit):
    folder = copy(run)
    edit_manifest(folder, edit, rehash=True)
    rejected(folder, "problem")


def test_problem_record_that_contradicts_the_run_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m["problem"].update(name="smoke_ehrlich_tiny"))
    assert "differs from run.problem" in str(rejected(folder, "manifest"))


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
    total = len(records) + len(last_call)
    edit_manifest(folder,
                  lambda m: m.update(evaluations=total, queries=total, calls=m["calls"] + 1))
    assert "should have stopped (solved)" in str(rejected(folder, "status", len(records)))


def test_stalled_claimed_by_a_run_that_spent_its_budget_is_rejected(copy):
    folder = copy("ga")
    edit_manifest(folder, lambda m: m.update(stop_reason="stalled"))
    rejected(folder, "status", None)
