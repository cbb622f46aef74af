"""What one writer per run folder costs a run: taking and releasing its lock
(``holo_bench.run_lock``), which must stay far under a millisecond. Run:
    .venv/bin/pytest benchmarks/test_run_lock_speed.py --benchmark-only
"""

from holo_bench.run_lock import lock_run_folder


def test_ours_lock_and_release_a_run_folder(benchmark, tmp_path):
    def lock_and_release():
        with lock_run_folder(tmp_path / "run"):
            pass

    benchmark(lock_and_release)
    assert (tmp_path / "run" / "writer.lock").read_bytes() == b""  # released, no holder named
