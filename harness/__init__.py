"""Composition: the runner, the executors and the command line, the one layer that imports
``holo_bench`` (the core), ``optimizers`` and ``leaderboard`` together."""
