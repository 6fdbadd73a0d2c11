"""Chapter 6's widget: seconds from a knob move to the charts redrawn, uncached and cached.

    python bench/quantization_knobs.py              # all cores torch sees
    python bench/quantization_knobs.py --threads 2  # the course's 2-core laptop

Builds the notebook's ``QuantizationExplorer`` on the cached baseline (chapter 3 trains it if the
cache is empty) and calls ``update`` in a loop, as the widget's observers do when a knob moves:
first a learner's walk through settings never seen (round the Linear weights, score the fixed
validation subset, redraw the three charts), then the same walk again (answered from the cache,
redraw only). Targets (issue 24; issue 4 had 1.5 s and 0.2 s): median ≤ 1 s uncached and ≤ 0.1 s cached on 2
cores. ``bench/knobs.py`` times every course widget's knobs the same way. The load
average is printed: other work on the machine slows the uncached moves most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# A learner's walk: the slider down step by step, then the two toggles, then the slider again.
WALK = [(7, "per-channel", True), (6, "per-channel", True), (5, "per-channel", True), (4, "per-channel", True),
        (4, "per-tensor", True), (4, "per-tensor", False), (3, "per-tensor", False), (3, "per-channel", False),
        (2, "per-channel", False), (2, "per-channel", True)]
TARGET_UNCACHED_S, TARGET_CACHED_S = 1.0, 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="cached walks to time")
    args = parser.parse_args()

    import torch

    import minikit
    from minikit.compression_widgets import QuantizationExplorer

    minikit.setup(threads=args.threads)
    baseline = minikit.get_baseline(progress=False)
    start = time.perf_counter()
    explorer = QuantizationExplorer(baseline.model, baseline.tokenizer, baseline.splits["validation"])
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    print(f"explorer: {explorer.n_examples} validation articles at {explorer.max_length} tokens, "
          f"built in {time.perf_counter() - start:.2f} s (float32 accuracy {explorer.reference_accuracy:.1%})")

    def walk() -> list[float]:
        seconds = []
        for setting in WALK:
            t = time.perf_counter()
            explorer.update(*setting)
            seconds.append(time.perf_counter() - t)
        return seconds

    uncached = walk()
    for setting, s in zip(WALK, uncached):
        print(f"  uncached {setting[0]}-bit {setting[1]:11s} {'sym ' if setting[2] else 'asym'}: {s:.3f} s")
    cached = [s for _ in range(args.rounds) for s in walk()]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for label, times, target in (("uncached", uncached, TARGET_UNCACHED_S), ("cached", cached, TARGET_CACHED_S)):
        median = statistics.median(times)
        print(f"{label:9s} median {median:.3f} s over {len(times)} moves (max {max(times):.3f} s), target ≤ {target} s: "
              f"{'met' if median <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
