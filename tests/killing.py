"""Kill a ``holo-bench run`` once its optimizer has saved some rounds, then run it again: the
resumption check the model-based optimizers' end-to-end tests share."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from holo_bench.record import read_manifest
from holo_bench.trace import read_trace


def run_command(optimizer: str, problem: str, budget: int, out, params: dict) -> list[str]:
    """``holo-bench run`` of seed 0 in one process, its parameters as ``--set`` options."""
    settings = [arg for key, value in params.items() for arg in ("--set", f"{key}={value}")]
    return [sys.executable, "-m", "harness.cli", "run", "--optimizer", optimizer, "--problem",
            problem, "--seeds", "0", "--budget", str(budget), "--out", str(out), "--quiet",
            "--no-page", "--workers", "1", *settings]


def kill_after_rounds(command: list[str], folder: Path, rounds: int,
                      timeout: float = 120) -> tuple[np.ndarray, np.ndarray]:
    """Run ``command`` at one torch thread, SIGKILL it once the run in ``folder`` has written
    ``rounds`` lines of ``optimizer/metrics.jsonl``, check that it was killed mid-run, and run the
    command again to the end. Returns the trace records before the kill and after the rerun."""
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=one_thread)
    metrics = folder / "optimizer" / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rounds:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert read_manifest(folder).status == "running"
    partial = read_trace(folder / "trace.bin")[1]
    subprocess.run(command, check=True, env=one_thread)
    return partial, read_trace(folder / "trace.bin")[1]


def assert_resumed_as_whole(partial: np.ndarray, resumed: np.ndarray, whole: np.ndarray) -> None:
    """The resumed run asked and was told what the uninterrupted one was, and kept the calls made
    before the kill (their wall times unchanged)."""
    assert len(partial) < len(resumed)
    np.testing.assert_array_equal(resumed["sequence"], whole["sequence"])
    np.testing.assert_array_equal(resumed["value"], whole["value"])
    np.testing.assert_array_equal(resumed["time"][: len(partial)], partial["time"])
