"""Static int8 (QDQ, calibrated) against dynamic int8 in ONNX Runtime, on the student and the 6-layer baseline.

    python bench/int8_static_vs_dynamic.py --threads 2
    python bench/int8_static_vs_dynamic.py --threads 2 --only student --calibration 64

For each model (the course's distilled student and the 6-layer fine-tuned baseline, both from the
cache; built if missing): export ONNX once, then make
- dynamic int8 (``quantization.quantize_onnx``: activations' scales found at run time),
- static int8 (``static_int8.quantize_static_onnx``) with ``FLOAT_OP_TYPES`` kept in float,
- static int8 with nothing kept in float (LayerNorm, Softmax, GELU quantized too): the lesson.
Calibration: the first ``--calibration`` training texts (never test). One ``Benchmark`` per model
on the test split times the fp32 ONNX file and the three int8 files side by side (batch 1, 128
tokens), so only same-run ratios count. Accuracy: Wilson 95 % interval, and the paired comparison
with fp32 ONNX (Newcombe interval, McNemar): "cannot tell" when within noise.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="batch-1 calls timed per variant")
    parser.add_argument("--calibration", type=int, default=128, help="training texts to calibrate on")
    parser.add_argument("--only", choices=("student", "baseline"), default=None, help="one model only")
    args = parser.parse_args()

    import pandas as pd
    import torch

    import minikit
    from minikit import distillation, quantization as Q, static_int8 as S
    from minikit.errors import OnnxMismatchError
    from minikit.stats import format_accuracy, paired_comparison

    minikit.setup(threads=args.threads, charts=False)
    baseline = minikit.get_baseline(progress=False)
    models = {"6-layer baseline": baseline}
    if args.only != "baseline":
        models["student"] = distillation.get_student(baseline, progress=False)
    if args.only == "student":
        del models["6-layer baseline"]
    splits = baseline.splits
    calibration = splits["train"].select(range(min(args.calibration, len(splits["train"]))))
    print(f"threads {args.threads}, cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; "
          f"calibration: the first {len(calibration)} training texts; kept in float: {list(S.FLOAT_OP_TYPES)}")

    rows = []
    for name, tuned in models.items():
        model, tokenizer = tuned.model, tuned.tokenizer
        encoded = tokenizer(splits["validation"]["text"][:16], truncation=True, max_length=128, padding=True,
                            return_tensors="pt")
        real = {k: encoded[k] for k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            atol, rtol = Q.INT8_TOLERANCE
            limit = atol + rtol * float(model.eval()(**real).logits.abs().max())
        with tempfile.TemporaryDirectory(prefix="minikit-static-int8-") as tmp:
            fp32 = Q.export_onnx(model, Path(tmp) / "model.onnx", inputs=real)
            files = {"fp32 ONNX": fp32,
                     "dynamic int8": Q.quantize_onnx(fp32, Path(tmp) / "dynamic.onnx", model, inputs=real)}
            gaps = {"fp32 ONNX": Q.check_onnx(fp32, model, real), "dynamic int8": Q.check_onnx(
                files["dynamic int8"], model, real, Q.INT8_TOLERANCE)}
            for label, keep in (("static int8", S.FLOAT_OP_TYPES), ("static int8, nothing float", ())):
                path = S.quantize_static_onnx(fp32, Path(tmp) / f"{len(keep)}.onnx", model, tokenizer, calibration,
                                              n_calibration=None, keep_float=keep, inputs=real, check=False)
                files[label] = path
                try:
                    gaps[label] = Q.check_onnx(path, model, real, Q.INT8_TOLERANCE)
                except OnnxMismatchError:
                    gaps[label] = Q.check_onnx(path, model, real, (float("inf"), 0.0))  # the gap, reported
            bench = minikit.Benchmark(splits["test"], tokenizer, max_length=128, baseline="fp32 ONNX",
                                      repeats=args.repeats, batch_size=16, batch_repeats=1)
            for label, path in files.items():
                bench.add(label, path, config=model.config)
            table = bench.run().set_index("name")
            reference = bench.correct("fp32 ONNX")
            for label in files:
                row, correct = table.loc[label], bench.correct(label)
                rows.append({
                    "model": name, "variant": label,
                    "accuracy [95 %], n": format_accuracy(int(correct.sum()), len(correct)),
                    "vs fp32 ONNX": "—" if label == "fp32 ONNX" else str(paired_comparison(correct, reference)),
                    "max |Δlogit|": f"{gaps[label]:.3f}" + ("" if gaps[label] <= limit else " (over tolerance)"),
                    "size MB": round(float(row["size_mb"]), 2),
                    "p50 ms": round(float(row["latency_p50_ms"]), 2),
                    "speedup vs fp32 ONNX": f"{row['speedup']:.2f}x",
                })
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 80):
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"load average after: {os.getloadavg()[0]:.2f}. Latency: batch 1, 128 tokens, {args.threads} threads, "
          "variants of one model timed alternately in one run (compare within a model only).")


if __name__ == "__main__":
    main()
