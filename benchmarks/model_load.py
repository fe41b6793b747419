"""How long the embedded model takes to get ready: the first run's GGUF conversion, and a load from the cache.

    python benchmarks/model_load.py [--repeat 3]

Each measurement is a fresh Python process, as each `interlock run` is, with the cache in a temporary folder
(``INTERLOCK_CACHE_DIR``) so that the user's own cache is never touched. Per process it times importing torch and
transformers, then ``Transformers.default()``, in wall-clock seconds and in CPU seconds of the process (all its
threads; less sensitive to other jobs on a shared machine): a conversion (GGUF dequantised, saved as
safetensors) in the first process on an empty cache, a cached load in the processes after it. ``ready_s`` is
what a user waits under the "loading the model" spinner of ``interlock run`` (imports + load). Prints JSON with
the median of each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, time
started, cpu0 = time.perf_counter(), time.process_time()
import torch, transformers
from interlock.generators import Transformers
imported, cpu1 = time.perf_counter(), time.process_time()
Transformers.default()
loaded, cpu2 = time.perf_counter(), time.process_time()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "ready_s": loaded - started,
                  "import_cpu_s": cpu1 - cpu0, "load_cpu_s": cpu2 - cpu1}))
"""


def _measure(cache: str) -> dict[str, float]:
    env = {**os.environ, "INTERLOCK_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=900,
                          check=True, cwd=ROOT)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="conversions and cached loads to time (default 3)")
    args = parser.parse_args()
    conversions: list[dict[str, float]] = []
    cached: list[dict[str, float]] = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="interlock-cache-") as cache:
            conversions.append(_measure(cache))  # an empty cache: this load converts
            cached.append(_measure(cache))  # the same cache: this one loads the converted copy
    print(json.dumps({
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2), "repeat": args.repeat,
        "first_run": {"import_s": _median(conversions, "import_s"), "conversion_s": _median(conversions, "load_s"),
                      "ready_s": _median(conversions, "ready_s"),
                      "import_cpu_s": _median(conversions, "import_cpu_s"),
                      "conversion_cpu_s": _median(conversions, "load_cpu_s")},
        "cached": {"import_s": _median(cached, "import_s"), "load_s": _median(cached, "load_s"),
                   "ready_s": _median(cached, "ready_s"), "import_cpu_s": _median(cached, "import_cpu_s"),
                   "load_cpu_s": _median(cached, "load_cpu_s")},
        "runs": {"first_run": conversions, "cached": cached},
    }, indent=1))


if __name__ == "__main__":
    main()
