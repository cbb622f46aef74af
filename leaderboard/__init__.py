"""Results as data: reading run folders, regret curves and leaderboards."""

from leaderboard.runs import load_runs

__all__ = ["load_runs"]
