"""The course's compressed model against the float32 baseline, measured side by side in one run (issue 5).

    python bench/compressed_model.py               # 2 threads, as the targets are stated
    python bench/compressed_model.py --requests 800

The compressed model: chapter 7's student (3 of the baseline's 6 layers, vocabulary pruned to the
train split's tokens, distilled; ``minikit.distillation.get_student``), exported int8 for ONNX
Runtime exactly as chapter 8 serves it (``deployment.export_for_serving``). The baseline: chapter
3's fine-tuned MiniLM-L6 in float32 PyTorch. Both come from the cache (trained if it is empty).

One ``Benchmark`` on the BBC test split, batch 1 at 128 tokens, alternating rounds; then the
server load-tested at 16 concurrent clients with batching off and on (loopback).
Targets: ≥ 90 % smaller on disk, ≥ 4× lower batch-1 latency, ≤ 1.0 point accuracy loss (paired interval:
met only if it excludes a bigger loss, else "cannot tell");
adaptive batching ≥ 2× the throughput of one-at-a-time serving, p95 reported.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

TARGET_SMALLER, TARGET_SPEEDUP, TARGET_POINTS, TARGET_BATCHING = 0.90, 4.0, 1.0, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    parser.add_argument("--repeats", type=int, default=100, help="batch-1 calls timed per variant")
    parser.add_argument("--requests", type=int, default=400, help="requests per load test")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    import pandas as pd
    import torch

    import minikit
    from minikit import deployment, load_testing
    from minikit.distillation import get_student

    minikit.setup(threads=args.threads, charts=False)
    baseline = minikit.get_baseline(progress=False)
    student = get_student(baseline, progress=False)
    splits = baseline.splits
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory(prefix="minikit-compressed-") as tmp:
        folder = deployment.export_for_serving(student.model, student.tokenizer, Path(tmp) / "served",
                                               texts=splits["validation"]["text"][:16])
        bench = minikit.Benchmark(splits["test"], baseline.tokenizer, max_length=128, baseline="fp32 baseline",
                                  repeats=args.repeats, batch_size=16, batch_repeats=2)
        bench.add("fp32 baseline", baseline.model)
        bench.add("compressed (int8 ORT)", folder / "model.onnx", config=student.model.config,
                  tokenizer=student.tokenizer)
        table = bench.run().set_index("name")

        texts = list(splits["test"]["text"])
        settings = {"off": {"max_batch_size": 1},
                    "on": {"max_batch_size": 16, "max_wait_ms": 5.0}}
        served = deployment.load_served_model(folder, threads=args.threads)
        batching = load_testing.batching_comparison(served, texts, clients=args.clients, requests=args.requests,
                                                  settings=settings)
        by_batch = load_testing.latency_vs_batch(served, texts, batch_sizes=(1, 16), repeats=10)

    with pd.option_context("display.width", 160, "display.max_columns", None):
        print(table[["accuracy", "params_m", "size_mb", "latency_p50_ms", "latency_p95_ms", "size_ratio", "speedup",
                     "accuracy_delta"]].round(3))
        print(batching[["batching", "sent", "ok", "errors", "requests_per_s", "p50_ms", "p95_ms", "p99_ms",
                        "mean_batch_size", "throughput_ratio"]].round(2))
    row, base = table.loc["compressed (int8 ORT)"], table.loc["fp32 baseline"]
    smaller = 1 - row["size_ratio"]
    gain = float(batching.set_index("batching").loc["on", "throughput_ratio"])
    per_text = by_batch.set_index("batch_size")["ms_per_text"]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"compressed vs fp32 baseline ({int(row['n_eval'])} test articles, {args.threads} threads):")
    print(f"  size      {row['size_mb']:.2f} MB vs {base['size_mb']:.2f} MB: {smaller:.1%} smaller, "
          f"target ≥ {TARGET_SMALLER:.0%}: {'met' if smaller >= TARGET_SMALLER else 'MISSED'}")
    print(f"  latency   batch-1 p50 {row['latency_p50_ms']:.2f} ms vs {row['baseline_p50_ms']:.2f} ms: "
          f"{row['speedup']:.2f}x faster, target ≥ {TARGET_SPEEDUP:g}x: {'met' if row['speedup'] >= TARGET_SPEEDUP else 'MISSED'}")
    paired = minikit.paired_comparison(bench.correct("compressed (int8 ORT)"), bench.correct("fp32 baseline"))
    verdict = minikit.stats.loss_verdict(paired, TARGET_POINTS, strict=False)  # holds / fails / cannot tell (n)
    verdict = {"holds": "met", "fails": "MISSED"}.get(verdict, verdict)
    print(f"  accuracy  {row['accuracy']:.2%} vs {base['accuracy']:.2%}: {paired.points:+.2f} points "
          f"[{paired.low:+.2f}, {paired.high:+.2f}] on the same {paired.n} articles, paired; "
          f"target at most {TARGET_POINTS:g} lost: {verdict}")
    print(f"  batching  {gain:.2f}x the throughput of one-at-a-time at {args.clients} clients (p95 "
          f"{batching.set_index('batching').loc['on', 'p95_ms']:.0f} ms on, "
          f"{batching.set_index('batching').loc['off', 'p95_ms']:.0f} ms off), target ≥ {TARGET_BATCHING:g}x: "
          f"{'met' if gain >= TARGET_BATCHING else 'MISSED'}")
    print(f"            the most batching could give here: ms per text {per_text[1]:.2f} at batch 1 vs "
          f"{per_text[16]:.2f} at batch 16 = {per_text[1] / per_text[16]:.2f}x")


if __name__ == "__main__":
    main()
