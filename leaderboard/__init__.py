"""Results as data: reading run folders, regret curves and leaderboards (built on the run store)."""
