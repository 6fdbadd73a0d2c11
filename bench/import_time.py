"""What ``import minikit`` costs against ``import torch, transformers``, measured side by side in one run (issue 24).

    python bench/import_time.py              # 5 fresh interpreters each, alternating
    python bench/import_time.py --runs 9 --top 25

The baseline is ``import torch, transformers; from transformers import AutoModelForSequenceClassification``:
what any notebook on these models pays before it does anything. Each run is a fresh interpreter
(wall time from start to exit, and its peak RSS from ``wait4``); the two commands alternate, and
which goes first alternates, so a machine growing busier weighs on both. One untimed run of each
first fills the file cache. Target: the median ratio ≤ 1.5.

Then ``python -X importtime -c "import minikit"``: the modules minikit imports that the baseline
does not, by package and one by one, heaviest (own time) first, so a regression names its culprit
(a top-level ``import scipy.stats`` shows up as ``scipy``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
BASELINE = "import torch, transformers; from transformers import AutoModelForSequenceClassification"
MINIKIT = "import minikit"


def run_once(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh ``python -c code`` run from the repository root."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"`python -c {code!r}` failed (exit {process.returncode}); run it by hand to see why.")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kB


def import_times(code: str) -> dict[str, float]:
    """Module → its own import seconds (without the modules it imports), from ``python -X importtime -c code``."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    times: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _cumulative, name = line[len("import time:"):].split("|")
        times[name.strip()] = int(own) / 1e6
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed fresh interpreters per command (default 5)")
    parser.add_argument("--top", type=int, default=15, help="modules listed from -X importtime (default 15)")
    args = parser.parse_args()
    if args.runs < 1:
        raise SystemExit(f"--runs {args.runs}: expected at least 1.")

    commands = {"torch+transformers": BASELINE, "minikit": MINIKIT}
    for code in commands.values():
        run_once(code)  # untimed: the file cache and __pycache__
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
    for round_ in range(args.runs):
        order = list(commands) if round_ % 2 == 0 else list(reversed(commands))
        for label in order:
            samples[label].append(run_once(commands[label]))

    print(f"{args.runs} fresh interpreters each, alternating ({sys.executable}, {os.cpu_count()} CPUs):")
    medians = {}
    for label, runs in samples.items():
        seconds = statistics.median(s for s, _ in runs)
        rss = statistics.median(r for _, r in runs)
        medians[label] = seconds
        spread = ", ".join(f"{s:.2f}" for s, _ in runs)
        print(f"  {label:<20} median {seconds:5.2f} s  (runs: {spread})   peak RSS {rss:5.0f} MB")
    ratio = medians["minikit"] / medians["torch+transformers"]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"ratio minikit / torch+transformers: {ratio:.2f} ({verdict} the target ≤ {TARGET_RATIO})")

    baseline_modules = set(import_times(BASELINE))
    extra = {module: own for module, own in import_times(MINIKIT).items() if module not in baseline_modules}
    packages: dict[str, float] = {}
    for module, own in extra.items():
        packages[module.split(".")[0]] = packages.get(module.split(".")[0], 0.0) + own
    print(f"\n-X importtime: what `import minikit` loads beyond the baseline ({len(extra)} modules, "
          f"{sum(extra.values()):.2f} s of their own time), by package:")
    for package, own in sorted(packages.items(), key=lambda item: -item[1])[:args.top]:
        print(f"  {own:6.3f} s  {package}")
    print("heaviest modules (own time; minikit's own includes the transformers names it resolves):")
    for module, own in sorted(extra.items(), key=lambda item: -item[1])[:args.top]:
        print(f"  {own:6.3f} s  {module}")

if __name__ == "__main__":
    main()
