"""Compare two pytest-benchmark JSON files (base, head) made in the same CI job.

Prints the head/base ratio of median times for every benchmark present in both. A ratio above
``--warn`` prints a warning; above ``--fail`` (default 4x, beyond the 2.6x run-to-run noise seen
on these machines) it exits 1. Usage:
    python benchmarks/compare_speed.py base.json head.json [--warn 1.5] [--fail 4]
"""

from __future__ import annotations

import argparse
import json
import sys


def medians(path: str) -> dict[str, float]:
    with open(path) as file:
        data = json.load(file)
    return {bench["fullname"]: bench["stats"]["median"] for bench in data["benchmarks"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head")
    parser.add_argument("--warn", type=float, default=1.5)
    parser.add_argument("--fail", type=float, default=4.0)
    args = parser.parse_args(argv)
    base, head = medians(args.base), medians(args.head)
    common = sorted(set(base) & set(head))
    if not common:
        print("speed: no benchmark in common between base and head; nothing to compare")
        return 0
    slow = 0
    for name in common:
        ratio = head[name] / base[name]
        flag = "FAIL" if ratio > args.fail else "WARN" if ratio > args.warn else "ok"
        slow += flag == "FAIL"
        print(f"{flag:4s} {ratio:6.2f}x  base {base[name] * 1e3:9.3f} ms  "
              f"head {head[name] * 1e3:9.3f} ms  {name}")
    if slow:
        print(f"speed: {slow} benchmark(s) more than {args.fail}x slower than base",
              file=sys.stderr)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
