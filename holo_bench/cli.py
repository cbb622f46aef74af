"""The ``holo-bench`` command line."""

from __future__ import annotations

import argparse
import sys

from holo_bench import suite


def _list(args: argparse.Namespace) -> int:
    print("suites:")
    for name, members in suite.suites().items():
        print(f"  {name}: {', '.join(members)}")
    print("instances:")
    for name, entry in suite.instances().items():
        print(f"  {name:28s} {entry['spec']:45s} {entry.get('about', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="holo-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the named suites and instances").set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
