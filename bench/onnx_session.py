"""ONNX Runtime's ``session.intra_op.allow_spinning``, both settings side by side in one run (issue 24).

    python bench/onnx_session.py                 # 2 threads, the served int8 student
    python bench/onnx_session.py --threads 1

By default ONNX Runtime's idle intra-op worker threads spin (busy-wait) for a while after each run, so the
next run starts without waking them: less latency, more CPU burnt. With ``allow_spinning=0`` they sleep.
The served int8 student (``export_for_serving``, as chapter 8 serves it) is loaded twice, once per
setting, and timed in alternating blocks of batch-1 calls on a real test article (128 tokens):
p50 latency, and the process's CPU time per request (``time.process_time`` over the block, so worker
threads' spinning counts), back to back and with an idle gap between requests (a server's think time).
At one thread there is no worker to spin and the settings should agree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--calls", type=int, default=50, help="calls per block")
    parser.add_argument("--rounds", type=int, default=8, help="alternating blocks per setting and gap")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="idle time between requests in the gapped rows")
    args = parser.parse_args()

    import onnxruntime as ort
    import pandas as pd

    import minikit
    from minikit import deployment, timing
    from minikit.distillation import get_student

    minikit.setup(threads=args.threads, charts=False)
    baseline = minikit.get_baseline(progress=False)
    student = get_student(baseline, progress=False)
    text = max(baseline.splits["test"]["text"][:50], key=len)  # one long article: the full 128 tokens
    with tempfile.TemporaryDirectory(prefix="minikit-session-") as tmp:
        folder = deployment.export_for_serving(student.model, student.tokenizer, Path(tmp) / "served",
                                               texts=baseline.splits["validation"]["text"][:16])
        served = deployment.load_served_model(folder, threads=args.threads)
        feeds = served.encode([text])
        sessions = {}
        for spinning in ("1", "0"):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
            sessions[spinning] = ort.InferenceSession(str(folder / "model.onnx"), options,
                                                      providers=["CPUExecutionProvider"])
        names = [i.name for i in sessions["1"].get_inputs()]
        feeds = {k: v for k, v in feeds.items() if k in names}
        for session in sessions.values():
            for _ in range(20):
                session.run(None, feeds)  # warm-up
        latency = {(s, g): [] for s in sessions for g in (0.0, args.gap_ms)}
        cpu = {key: [] for key in latency}
        others = timing.others_cores_now(1.0)
        with timing.LoadWatch() as watch:
            for _ in range(args.rounds):
                for gap in (0.0, args.gap_ms):
                    for spinning, session in sessions.items():
                        cpu_start = time.process_time()
                        for _ in range(args.calls):
                            start = time.perf_counter()
                            session.run(None, feeds)
                            latency[spinning, gap].append((time.perf_counter() - start) * 1e3)
                            if gap:
                                time.sleep(gap / 1e3)
                        cpu[spinning, gap].append((time.process_time() - cpu_start) * 1e3 / args.calls)
    rows = [{"allow_spinning": s, "gap_ms": g, "p50_ms": statistics.median(latency[s, g]),
             "p95_ms": sorted(latency[s, g])[int(0.95 * len(latency[s, g]))],
             "cpu_ms_per_request": statistics.median(cpu[s, g])} for s, g in latency]
    table = pd.DataFrame(rows)
    print(f"served int8 student, batch 1, {feeds['input_ids'].shape[1]} tokens, {args.threads} intra-op threads, "
          f"{args.rounds}×{args.calls} calls per row, cpu count {os.cpu_count()}; other processes kept "
          f"{others if others is None else round(others, 2)} cores busy before; load check: {watch.check}")
    print(table.round(3).to_string(index=False))
    for gap in (0.0, args.gap_ms):
        on, off = (table[(table.allow_spinning == s) & (table.gap_ms == gap)].iloc[0] for s in ("1", "0"))
        print(f"gap {gap:g} ms: spinning off is {off.p50_ms / on.p50_ms:.2f}x the p50 latency and "
              f"{off.cpu_ms_per_request / on.cpu_ms_per_request:.2f}x the CPU per request of spinning on")


if __name__ == "__main__":
    main()
