"""The layers import downwards only: the core (functions, suite, oracle, trace, record, measures,
protocol) loads without the optimizers, the leaderboard or the harness; the leaderboard without the
optimizers or the harness; the optimizers without the leaderboard or the harness."""

import subprocess
import sys

# Imported in this order in one fresh interpreter; after each group, the packages named must
# still be absent from sys.modules.
LAYERS = [
    (["holo_bench", "holo_bench.functions", "holo_bench.suite", "holo_bench.oracle",
      "holo_bench.trace", "holo_bench.record", "holo_bench.measures", "holo_bench.protocol",
      "holo_bench.params", "holo_bench.seeding", "holo_bench.run_lock", "holo_bench.interop"],
     ["optimizers", "leaderboard", "harness"]),
    (["leaderboard", "leaderboard.verify", "leaderboard.store", "leaderboard.aggregate",
      "leaderboard.render", "leaderboard.regress", "leaderboard.runs", "leaderboard.archive",
      "leaderboard.published"],
     ["optimizers", "harness"]),
    (["optimizers", "optimizers.registry", "optimizers.ga", "optimizers.random_search",
      "optimizers.closure"], ["harness"]),
]

SCRIPT = """
import importlib, json, sys
layers = json.loads(sys.argv[1])
found = {}
for modules, forbidden in layers:
    for module in modules:
        importlib.import_module(module)
    loaded = {name.split(".")[0] for name in sys.modules}
    found[modules[0]] = sorted(loaded & set(forbidden))
print(json.dumps(found))
"""


def test_each_layer_imports_only_what_is_below_it():
    import json

    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(LAYERS)], capture_output=True,
                            text=True, check=True)
    assert json.loads(result.stdout) == {"holo_bench": [], "leaderboard": [], "optimizers": []}
