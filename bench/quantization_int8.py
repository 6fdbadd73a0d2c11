"""int8 through ONNX Runtime against the float32 PyTorch baseline, measured side by side in one run.

    python bench/quantization_int8.py              # all cores torch sees
    python bench/quantization_int8.py --threads 2  # the course's 2-core laptop

Exports the cached baseline (chapter 3 trains it if the cache is empty) to ONNX, quantizes it to
int8 with ONNX Runtime (both checked against PyTorch, see ``minikit.quantization``), then runs one
``Benchmark`` on the test split: float32 PyTorch (the baseline), float32 ONNX Runtime (what the
runtime alone gives) and int8 ONNX Runtime, timed alternately at batch 1 and 128 tokens.
Targets (issue 4), int8 ORT vs float32 PyTorch: ≥ 70 % smaller, ≥ 1.5× faster at batch 1,
accuracy within 1 point.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

TARGET_SMALLER, TARGET_SPEEDUP, TARGET_POINTS = 0.70, 1.5, 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=50, help="batch-1 calls timed per variant")
    args = parser.parse_args()

    import pandas as pd
    import torch

    import minikit
    from minikit import quantization as Q

    minikit.setup(threads=args.threads, charts=False)
    baseline = minikit.get_baseline(progress=False)
    model, tokenizer, splits = baseline.model, baseline.tokenizer, baseline.splits
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory(prefix="minikit-int8-") as tmp:
        encoded = tokenizer(splits["validation"]["text"][:16], truncation=True, max_length=128, padding=True,
                            return_tensors="pt")
        real = {k: encoded[k] for k in ("input_ids", "attention_mask")}
        fp32 = Q.export_onnx(model, Path(tmp) / "model.onnx", inputs=real)
        int8 = Q.quantize_onnx(fp32, Path(tmp) / "model.int8.onnx", model, inputs=real)
        print(f"int8 vs float32 PyTorch on 16 validation articles: largest |logit difference| "
              f"{Q.check_onnx(int8, model, real, Q.INT8_TOLERANCE):.3f} (tolerance {Q.INT8_TOLERANCE})")

        bench = minikit.Benchmark(splits["test"], tokenizer, max_length=128, baseline="fp32 PyTorch",
                                  repeats=args.repeats, batch_size=16, batch_repeats=2)
        bench.add("fp32 PyTorch", model)
        bench.add("fp32 ONNX Runtime", fp32, config=model.config)
        bench.add("int8 ONNX Runtime", int8, config=model.config)
        table = bench.run().set_index("name")

    with pd.option_context("display.width", 160, "display.max_columns", None):
        print(table[["accuracy", "size_mb", "latency_p50_ms", "latency_p95_ms", "size_ratio", "speedup",
                     "accuracy_delta"]].round(3))
    row = table.loc["int8 ONNX Runtime"]
    smaller, points = 1 - row["size_ratio"], row["accuracy_delta"]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"int8 ORT vs fp32 PyTorch ({int(row['n_eval'])} test articles):")
    print(f"  size      {row['size_mb']:.1f} MB vs {table.loc['fp32 PyTorch', 'size_mb']:.1f} MB: "
          f"{smaller:.1%} smaller (ratio {row['size_ratio']:.3f}), target ≥ {TARGET_SMALLER:.0%}: "
          f"{'met' if smaller >= TARGET_SMALLER else 'MISSED'}")
    print(f"  latency   batch-1 p50 {row['latency_p50_ms']:.2f} ms vs {row['baseline_p50_ms']:.2f} ms: "
          f"{row['speedup']:.2f}x faster, target ≥ {TARGET_SPEEDUP}x: {'met' if row['speedup'] >= TARGET_SPEEDUP else 'MISSED'}")
    print(f"  accuracy  {row['accuracy']:.2%} vs {table.loc['fp32 PyTorch', 'accuracy']:.2%}: {points:+.2f} points, "
          f"target within {TARGET_POINTS:g}: {'met' if abs(points) <= TARGET_POINTS else 'MISSED'}")
    runtime = table.loc["fp32 ONNX Runtime", "speedup"]
    print(f"  of the speedup, the runtime alone (fp32 ORT) gives {runtime:.2f}x; int8 then {row['speedup'] / runtime:.2f}x more")


if __name__ == "__main__":
    main()
