"""Graph fusion in the int8 path, measured side by side in one run (issue 24).

    python bench/onnx_fusion.py               # 2 threads
    python bench/onnx_fusion.py --threads 1

For the course's distilled student (chapter 7) and the 6-layer baseline (chapter 3), both from the
cache: the int8 folder as ``export_for_serving`` writes it without fusion (``fuse=False``) and with
(the default), their operator counts, and one ``Benchmark`` on the BBC test split (batch 1, 128
tokens, alternating rounds) with the fp32 PyTorch baseline as the reference. Quote same-run ratios:
single timings move ±30 % between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    parser.add_argument("--repeats", type=int, default=100, help="batch-1 calls timed per variant")
    parser.add_argument("--n-eval", type=int, default=None, help="test articles scored (default: the whole split)")
    parser.add_argument("--models", default="baseline,student", help="which of baseline,student (default both)")
    args = parser.parse_args()

    import pandas as pd

    import minikit
    from minikit import deployment, onnx_graph
    from minikit.distillation import get_student

    minikit.setup(threads=args.threads, charts=False)
    baseline = minikit.get_baseline(progress=False)
    student = get_student(baseline, progress=False)
    splits = baseline.splits
    texts = splits["validation"]["text"][:16]
    print(f"threads: {args.threads}, cpu count: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="minikit-fusion-") as tmp:
        bench = minikit.Benchmark(splits["test"], baseline.tokenizer, max_length=128, repeats=args.repeats,
                                  n_eval=args.n_eval, baseline="baseline fp32 (PyTorch)", batch_size=16,
                                  batch_repeats=2)
        bench.add("baseline fp32 (PyTorch)", baseline.model)
        for who, trained in (("baseline", baseline), ("student", student)):
            if who not in args.models.split(","):
                continue
            folders = {fuse: deployment.export_for_serving(trained.model, trained.tokenizer,
                                                           Path(tmp) / f"{who}-{fuse}", texts=texts, fuse=fuse)
                       for fuse in (False, True)}
            table = onnx_graph.fusion_table(onnx_graph.op_counts(folders[False] / "model.onnx"),
                                            onnx_graph.op_counts(folders[True] / "model.onnx"))
            print(f"\n{who} int8: operator counts, unfused → fused (rows that changed)")
            print(table[table["change"] != 0].to_string())
            for fuse, folder in folders.items():
                bench.add(f"{who} int8 {'fused' if fuse else 'unfused'}", folder / "model.onnx",
                          config=trained.model.config, tokenizer=trained.tokenizer)
        results = bench.run().set_index("name")
    with pd.option_context("display.width", 160, "display.max_columns", None):
        print(results[["accuracy", "size_mb", "latency_p50_ms", "latency_p95_ms", "speedup",
                       "accuracy_delta"]].round(3))
    for who in args.models.split(","):
        unfused, fused = (results.loc[f"{who} int8 {k}", "latency_p50_ms"] for k in ("unfused", "fused"))
        print(f"{who} int8: fused p50 {fused:.2f} ms vs unfused {unfused:.2f} ms = {unfused / fused:.2f}x faster; "
              f"fused is {results.loc[f'{who} int8 fused', 'speedup']:.2f}x the fp32 PyTorch baseline")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
