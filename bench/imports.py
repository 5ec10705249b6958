"""Cold-start cost: import time of ``function_app`` next to ``import azure.functions`` alone.

Each statement runs in a fresh interpreter, interleaved so both see the same machine load;
the figures are the minimum and median of N runs, and the ratio of the medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATEMENTS = {
    "python -c pass": "pass",
    "import azure.functions": "import azure.functions",
    "import function_app": "import function_app",
    "import azure.mgmt.apimanagement (not on the timer path)": "import azure.mgmt.apimanagement",
}


def measure(runs: int = 7) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in STATEMENTS}
    for _ in range(runs):
        for label, stmt in STATEMENTS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], cwd=ROOT, check=True)
            times[label].append(time.perf_counter() - start)
    return times


def heavy_modules_loaded_by_function_app() -> list[str]:
    code = ("import sys, function_app; print(','.join(sorted(m for m in sys.modules if m.startswith("
            "('azure.mgmt', 'azure.storage', 'azure.data', 'azure.identity')) and m.count('.') <= 2)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return [m for m in out.stdout.strip().split(",") if m]


def main(runs: int = 7) -> None:
    times = measure(runs)
    print(f"== import time, {runs} fresh interpreters each (seconds) ==")
    for label, values in times.items():
        print(f"  {label:58s} min {min(values):.3f}  median {statistics.median(values):.3f}")
    base = statistics.median(times["import azure.functions"])
    app = statistics.median(times["import function_app"])
    print(f"  ratio function_app / azure.functions (medians): {app / base:.2f}")
    heavy = heavy_modules_loaded_by_function_app()
    print(f"  SDK modules imported by function_app: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()
