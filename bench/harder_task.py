"""Issue 23's targets on the harder task (bbc-headlines) against bbc-news: what each compression knob costs.

    python bench/harder_task.py            # reads what `python -m minikit build` stored; trains what is missing

Prints, for both built-in tasks, from the same functions the chapters call:
- chapter 5: the accuracy of every pruning method across its slider (validation; 64 articles for bbc-news as
  the widget scores them, every validation headline for bbc-headlines), and the spread across each knob;
- chapter 6 (headlines): post-training rounding (PTQ), its control and QAT at 8/4/3/2 bits, per tensor and per
  channel, on the test split, with QAT's paired verdicts; the spread across the bits knob;
- chapter 7 (headlines): the distillation objectives at equal steps, with paired verdicts against logits only,
  and labels only against logits at 1-3 student layers (the depth knob's spread);
- chapter 6 (bbc-news): static int8 with each group of nodes kept float or quantized, against the float32 export.
A spread is the largest minus the smallest accuracy across the knob's range, in points (issue 23: ≥ 5 on the
harder task, at least one chart per chapter). Accuracies are shares of n examples; one example is 100/n points.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

import minikit
from minikit import distill_variants, qat, static_int8, stats
from minikit.pruning_sweep import PruningSweep

METHODS = ["global magnitude", "heads", "FFN neurons", "layers"]


def pruning_spreads() -> pd.DataFrame:
    rows = []
    for task in (minikit.BBC_NEWS, minikit.BBC_HEADLINES):
        baseline = minikit.get_baseline(dataset=task, progress=False)
        sweep = PruningSweep.of(baseline, n_examples=None if task == minikit.BBC_HEADLINES else 64)
        table = sweep.accuracies(METHODS)
        for method, curve in table.groupby("method", sort=False):
            at = curve.set_index("amount")["accuracy"]
            rows.append({"task": task, "method": method, "n": int(curve["n"].iloc[0]),
                         "unpruned %": 100 * at[0.0], "at 50 % %": 100 * at[0.5],
                         "spread (points)": 100 * (at.max() - at.min())})
    return pd.DataFrame(rows)


def qat_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    rounded = runs[runs["bits"] < 32]
    table = (100 * rounded.pivot_table(index=["granularity", "bits"], columns="method", values="accuracy",
                                       sort=False))[["PTQ", qat.CONTROL, "QAT"]]
    verdicts = []
    for (granularity, bits), group in rounded.groupby(["granularity", "bits"], sort=False):
        get = group.set_index("method")["correct"]
        verdicts.append(f"{granularity} {bits} bits: QAT − PTQ {stats.paired_comparison(get['QAT'], get['PTQ'])}; "
                        f"QAT − control {stats.paired_comparison(get['QAT'], get[qat.CONTROL])}")
    return table, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args()
    minikit.setup(threads=args.threads)
    warnings.simplefilter("ignore", minikit.DataWarning)
    pd.set_option("display.width", 160)

    print("Chapter 5, pruning without retraining (validation):")
    spreads = pruning_spreads()
    print(spreads.round(1).to_string(index=False))

    hard = minikit.get_baseline(dataset=minikit.BBC_HEADLINES, progress=False)
    runs = qat.chapter_runs(hard)
    table, verdicts = qat_table(runs)
    n = int(runs["n"].iloc[0])
    float32 = 100 * runs.loc[runs["method"] == "float32", "accuracy"].iloc[0]
    print(f"\nChapter 6, bbc-headlines, test accuracy (n = {n}; float32 {float32:.1f} %):")
    print(table.round(1).to_string())
    print("\n".join(verdicts))
    ptq = runs[runs["method"] == "PTQ"]
    for granularity, group in ptq.groupby("granularity"):
        print(f"spread across the bits knob, PTQ {granularity}: "
              f"{100 * (group['accuracy'].max() - group['accuracy'].min()):.1f} points")

    variants = distill_variants.kd_variants(hard)
    logits = variants.set_index("variant").loc[distill_variants.LOGITS, "correct"]
    print(f"\nChapter 7, bbc-headlines, the same 3-layer student at equal steps (test, n = {variants['n'].iloc[0]}; "
          f"teacher {hard.test_accuracy:.1%}):")
    for row in variants.itertuples():
        against = "" if row.variant == distill_variants.LOGITS else \
            f"   against logits: {stats.paired_comparison(row.correct, logits)}"
        print(f"  {row.variant:32s} {row.accuracy:.1%} [{row.low:.1%}, {row.high:.1%}], {row.steps} steps{against}")
    depths = distill_variants.depth_runs(hard)
    print("\nChapter 7, bbc-headlines, labels only against logits at each student depth (test, same steps):")
    for row in depths.itertuples():
        print(f"  {row.layers} layer(s), {row.variant:28s} {row.accuracy:.1%} [{row.low:.1%}, {row.high:.1%}]")
    for variant, group in depths.groupby("variant", sort=False):
        print(f"spread across the depth knob, {variant}: "
              f"{100 * (group['accuracy'].max() - group['accuracy'].min()):.1f} points")

    print("\nChapter 6, static int8 on bbc-news: which nodes stay float (test; against the float32 export):")
    exclusion = static_int8.exclusion_runs(minikit.get_baseline(progress=False))
    reference = exclusion.set_index("setting").loc["float32 (ONNX)", "correct"]
    for row in exclusion.itertuples():
        print(f"  {row.setting:36s} {stats.format_accuracy(sum(row.correct), row.n)}; max |Δlogit| "
              f"{row.max_logit_gap:.3f}; {stats.paired_comparison(row.correct, reference)}")


if __name__ == "__main__":
    main()
