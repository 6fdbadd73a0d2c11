"""Early exit against the full fine-tuned model: batch-1 latency and accuracy, measured side by side.

    python bench/early_exit.py              # all cores torch sees
    python bench/early_exit.py --threads 2  # the course's 2-core laptop

Trains (or loads from the cache) the exit heads of the cached baseline (chapter 3 trains it if
the cache is empty), chooses the max-prob threshold on the **validation** split (fewest layers
with no validation accuracy lost), then on the **test** split times the full model and early
exit one text at a time, alternately, and scores both. Issue 10's target: ≥ 1.5× lower mean
batch-1 latency with ≤ 0.5 point accuracy loss. Two ways of choosing on validation are reported:
the cautious one (the highest threshold using at most half the layers: the course's default) and
the fewest-layers one; the entropy and patience rules are printed too.
"""

from __future__ import annotations

import argparse
import os

TARGET_SPEEDUP, TARGET_POINTS = 1.5, 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    import minikit
    from minikit import early_exit as A

    minikit.setup(threads=args.threads, charts=False)
    baseline = minikit.get_baseline(progress=False)
    early = A.get_early_exit(baseline, progress=False)
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    print("\nAccuracy of each layer's own answer (validation):")
    print(early.layer_accuracy().to_string(index=False, float_format=lambda x: f"{x:.2%}"))

    fewest = A.choose_threshold(early.val_logits, early.val_labels, "max-prob")
    cautious = A.choose_threshold(early.val_logits, early.val_labels, "max-prob", max_layer_share=0.5)
    entropy = A.choose_threshold(early.val_logits, early.val_labels, "entropy",
                                 thresholds=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2))
    rules = [cautious, fewest, entropy, A.ExitRule("patience", patience=2)]
    why = {cautious.describe(): "cautious: highest threshold with ≤ half the layers, no val loss",
           fewest.describe(): "fewest layers with no val loss", entropy.describe(): "fewest layers, entropy",
           "patience 2": "two layers agree (no threshold)"}
    texts = list(baseline.splits["test"]["text"])
    y = early.test_labels
    timed = A.measure_exit_latency(early.model, texts, rules)
    rows = []
    for (_, row), rule in zip(timed.iterrows(), [None, *rules]):
        if rule is None:
            preds, layers = early.test_logits[:, -1].argmax(-1), np.full(len(y), early.model.num_layers)
        else:
            preds, layers = A.exit_predictions(early.test_logits, rule)
        rows.append({"variant": row["variant"], "chosen how": why.get(row["variant"], "—"), "test accuracy": (preds == y).mean(),
                     "mean layers": layers.mean(), "mean layers (timed)": row["mean_layers"],
                     "mean ms": row["mean_ms"], "p50 ms": row["p50_ms"], "speedup": row["speedup"]})
    table = pd.DataFrame(rows)
    table["points lost"] = (table["test accuracy"].iloc[0] - table["test accuracy"]) * 100
    print(f"\n{len(texts)} test articles, one at a time, 128 tokens max; rules chosen on validation:")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))

    print()
    for _, chosen in table.iloc[1:3].iterrows():
        speed_ok, loss_ok = chosen["speedup"] >= TARGET_SPEEDUP, chosen["points lost"] <= TARGET_POINTS
        print(f"{chosen['variant']} ({chosen['chosen how']}): {chosen['speedup']:.2f}× lower mean latency "
              f"(target ≥ {TARGET_SPEEDUP}×: {'met' if speed_ok else 'MISSED'}), {chosen['points lost']:+.2f} "
              f"points lost (target ≤ {TARGET_POINTS}: {'met' if loss_ok else 'MISSED'})")

    # The notebook's slider: every grid threshold's latency measured once (cached), then each move redraws.
    import statistics

    from minikit.widgets import EarlyExitExplorer

    curve = A.latency_curve(early, baseline.splits["validation"]["text"][:120])
    explorer = EarlyExitExplorer(curve, threshold=0.99)
    for threshold in [*curve["threshold"], *reversed(curve["threshold"].tolist())]:
        explorer.update(float(threshold))
    median = statistics.median(explorer.seconds)
    print(f"threshold slider: {len(explorer.seconds)} moves, median update {median * 1000:.0f} ms "
          f"(target ≤ 200 ms: {'met' if median <= 0.2 else 'MISSED'})")


if __name__ == "__main__":
    main()
