"""How the course's student was chosen: a few students distilled with the same recipe, ranked on validation.

    python bench/distill_candidates.py            # ~2 minutes per uncached candidate on 2 cores

Each candidate keeps some of the baseline's layers and prunes the vocabulary to the train split's
tokens (``distillation.student_start``), then trains with ``STUDENT_CONFIG`` (α = 0.5, T = 2).
The pick is the best **validation** accuracy (ties: the smaller model); the test accuracy is
printed beside it but not used to choose, so the test figure chapters 7-8 quote stays honest.
Runs are cached, so the chosen candidate is the one ``get_student`` then loads.
"""

from __future__ import annotations

import argparse

CANDIDATES = [((0, 2, 4), 20), ((1, 3, 5), 20), ((0, 2, 5), 20)]  # (teacher layers kept, min_count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import pandas as pd

    import minikit
    from minikit import distillation as D
    from minikit.metrics import size_on_disk_mb

    minikit.setup(threads=args.threads, charts=False)
    teacher = minikit.get_baseline(progress=False)
    rows = []
    for layers, min_count in CANDIDATES:
        start = D.student_start(teacher, layers, min_count)
        run = D.distill(start.model, teacher, tokenizer=start.tokenizer, config=D.STUDENT_CONFIG, progress=False)
        rows.append({"layers": str(layers), "min_count": min_count, "vocab": start.new_vocab_size,
                     "size_mb_fp32": round(size_on_disk_mb(run.model), 1),
                     "val_accuracy": run.result.best_val_accuracy, "test_accuracy": run.test_accuracy,
                     "train_s": round(run.result.seconds), "cached": run.from_cache})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).sort_values(["val_accuracy", "size_mb_fp32"], ascending=[False, True])
    print(table.to_string(index=False))
    best = table.iloc[0]
    print(f"pick (best validation accuracy): layers {best['layers']}, min_count {best['min_count']}; "
          f"in minikit.distillation: STUDENT_LAYERS = {D.STUDENT_LAYERS}, STUDENT_MIN_COUNT = {D.STUDENT_MIN_COUNT}")
    print(f"teacher: validation {teacher.result.best_val_accuracy:.4f}, test {teacher.test_accuracy:.4f}")


if __name__ == "__main__":
    main()
