"""Chapter 5's widget: seconds from a knob move to the charts redrawn, uncached and cached.

    python bench/pruning_knobs.py              # all cores torch sees
    python bench/pruning_knobs.py --threads 2  # the course's 2-core laptop

Builds the notebook's ``PruningExplorer`` on the cached baseline (chapter 3 trains it if the cache
is empty) and calls ``update`` in a loop, as the widget's observers do when a knob moves: first a
learner's walk through settings never seen (prune, score the fixed validation subset, time batch 1,
count sizes, redraw both charts), then the same walk again (answered from the cache, redraw only).
Targets (issue 24; issue 4 had 1.5 s and 0.2 s): median ≤ 1 s uncached and ≤ 0.1 s cached on 2
cores. ``bench/knobs.py`` times every course widget's knobs the same way. The load average is
printed: other work on the machine slows the uncached moves most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# A learner's walk: the slider up in steps for magnitude pruning, then each structured method.
WALK = [("global magnitude", 0.55), ("global magnitude", 0.6), ("global magnitude", 0.7),
        ("per-layer magnitude", 0.7), ("per-layer magnitude", 0.5), ("heads", 0.5), ("heads", 0.6),
        ("FFN neurons", 0.6), ("FFN neurons", 0.3), ("layers", 0.3), ("layers", 0.5)]
TARGET_UNCACHED_S, TARGET_CACHED_S = 1.0, 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="cached walks to time")
    args = parser.parse_args()

    import torch

    import minikit
    from minikit.compression_widgets import PruningExplorer

    minikit.setup(threads=args.threads)
    baseline = minikit.get_baseline(progress=False)
    start = time.perf_counter()
    explorer = PruningExplorer(baseline.model, baseline.tokenizer, baseline.splits["validation"])
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    print(f"explorer: {explorer.n_examples} validation articles at {explorer.max_length} tokens, "
          f"built in {time.perf_counter() - start:.2f} s (unpruned accuracy {explorer.accuracy():.1%})")

    cpu: list[float] = []

    def walk() -> list[float]:
        seconds = []
        for setting in WALK:
            t, c = time.perf_counter(), time.process_time()
            explorer.update(*setting)
            seconds.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        return seconds

    uncached = walk()
    for (method, amount), s, c in zip(WALK, uncached, cpu):
        point = explorer.measure(method, amount)  # cached: costs nothing
        print(f"  uncached {method:19s} {amount:4.0%}: {s:.3f} s wall, {c:.3f} CPU-s  (accuracy "
              f"{point.accuracy:.1%}, batch-1 {point.latency_ms:.1f} ms)")
    # On a busy machine wall time is inflated; CPU seconds / threads approximates an idle machine's wall time.
    idle = statistics.median(c / torch.get_num_threads() for c in cpu)
    print(f"uncached CPU-seconds / threads, median: {idle:.3f} s (≈ wall time on an idle machine)")
    cached = [s for _ in range(args.rounds) for s in walk()]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for label, times, target in (("uncached", uncached, TARGET_UNCACHED_S), ("cached", cached, TARGET_CACHED_S)):
        median = statistics.median(times)
        print(f"{label:9s} median {median:.3f} s over {len(times)} moves (max {max(times):.3f} s), target ≤ {target} s: "
              f"{'met' if median <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
