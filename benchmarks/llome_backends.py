"""LLOME's generation backends side by side: generation throughput and time per round.

Runs LLOME-MargE on one instance once per backend, in this process and on this machine, with the
same seed, model and budget, and reads the per-round wall times and generated-token counts each
run reports (``optimizer/metrics.jsonl``). Rounds after the first are compared (the first round
includes starting the engine). Prints a markdown table and writes the numbers as JSON.

    python benchmarks/llome_backends.py --device cuda --hidden-size 512 --layers 8 --head-size 64
    python benchmarks/llome_backends.py --backends hf,vllm --budget 14000   # CPU, default model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from harness.runner import make_job, run_job
from optimizers.llome import model as lm


def measure(backend: str, args, out: Path) -> dict:
    params = dict(backend=backend, device=args.device, hidden_size=args.hidden_size,
                  layers=args.layers, head_size=args.head_size, samples=args.samples,
                  steps=args.steps)
    job = make_job("llome-marge", args.problem, args.seed, args.budget, out, params=params,
                   label=f"llome-marge-{backend}")
    manifest = run_job(job)
    if manifest.status != "finished":
        raise RuntimeError(f"{backend}: {manifest.error}")
    folder = job.folder / "optimizer"
    rounds = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    later = rounds[1:] or rounds
    parameters = sum(p.numel() for p in lm.load(folder / "round-1").parameters())
    tokens = sum(r["generated_tokens"] for r in later)
    seconds = sum(r["generate_seconds"] for r in later)
    return {
        "backend": backend, "parameters": parameters, "rounds": len(rounds),
        "regret": manifest.regret,
        "tokens_per_second": tokens / seconds,
        "generate_seconds_per_round": statistics.median(r["generate_seconds"] for r in later),
        "train_seconds_per_round": statistics.median(r["train_seconds"] for r in later),
        "first_round_seconds": rounds[0]["train_seconds"] + rounds[0]["generate_seconds"],
    }


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{models[0] if models else platform.processor() or 'CPU'}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="hf,vllm")
    parser.add_argument("--problem", default="f2")
    parser.add_argument("--budget", type=int, default=16_000,
                        help="GA seed data (at most 10,000 evaluations) plus rounds of 2,000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--head-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4, help="samples per temperature")
    parser.add_argument("--steps", type=int, default=4, help="refinement steps")
    parser.add_argument("--out", default="llome-backends.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        results = [measure(backend, args, Path(runs)) for backend in args.backends.split(",")]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else _cpu_name()
    report = {"device": device, "settings": vars(args), "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.problem}, {results[0]['parameters']:,}-parameter model, on {device}\n")
    print("| backend | tokens/s | generation s/round | training s/round | first round s | rounds "
          "| regret |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['tokens_per_second']:,.0f} | "
              f"{r['generate_seconds_per_round']:.1f} | {r['train_seconds_per_round']:.1f} | "
              f"{r['first_round_seconds']:.1f} | {r['rounds']} | {r['regret']:.3f} |")


if __name__ == "__main__":
    main()
