"""Issue 23: chapter 9's compression lab on the harder task (bbc-headlines), out to the aggressive end.

    python bench/lab_front.py --threads 2   # trains what the cache lacks: the baseline, then each student

Builds ``Lab(get_baseline(dataset=BBC_HEADLINES))``, measures RECIPES (each timed beside the baseline in one
Benchmark run on the 309 test headlines; what the cache lacks is trained first: the baseline ~40 s, a student
~½–2 min, a recovery ~40 s), then prints the lab's results table and how many recipes are on the size front
(issue 23's target: at least 3). One headline is 100/309 = 0.32 points, so a step on the front smaller than
its paired interval is a tie. The 4-bit recipes are simulated: their size is the packed 4-bit size, their
latency float32 PyTorch's. Size and latency are shares of the baseline timed in the same run.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace

import pandas as pd

import minikit
from minikit.lab import Lab, Recipe, mark_fronts, pareto_front

# From the baseline to the aggressive end: one technique at a time, then the cheap combinations (a 4-bit or
# int8 copy of a model already trained costs seconds; each new depth or FFN share trains once).
RECIPES = [Recipe(), Recipe(bits=8), Recipe(bits=4), Recipe(depth=4, bits=8), Recipe(depth=2, bits=8),
           Recipe(depth=1, bits=8), Recipe(ffn_pruned=0.9), Recipe(ffn_pruned=0.9, bits=8), Recipe(depth=1, bits=4),
           Recipe(depth=1, ffn_pruned=0.9, bits=8), Recipe(depth=1, ffn_pruned=0.9, bits=4)]


def build_and_measure(lab: Lab, recipes: list[Recipe]) -> pd.DataFrame:
    """Seconds per recipe: its float model (trained if new), its int8 export, its measurement."""
    rows = []
    for recipe in recipes:
        start = time.perf_counter()
        if not recipe.is_baseline:
            lab.build(replace(recipe, bits=32))
        built = time.perf_counter()
        if recipe.bits == 8:
            lab.onnx_int8(recipe)
        exported = time.perf_counter()
        lab.measure(recipe)  # the 4-bit copy is rounded here, from the float model
        done = time.perf_counter()
        rows.append({"name": recipe.name, "trains": recipe.trains or "", "build_s": built - start,
                     "export_s": exported - built, "measure_s": done - exported})
        print(f"  {recipe.name}: build {built - start:.0f} s, export {exported - built:.0f} s, "
              f"measure {done - exported:.0f} s", flush=True)
    return pd.DataFrame(rows)


def front_table(results: pd.DataFrame) -> pd.DataFrame:
    r = results
    return pd.DataFrame({
        "name": r["name"],
        "accuracy": (100 * r["accuracy"]).map("{:.1f} %".format),
        "interval": [f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(r["accuracy_low"], r["accuracy_high"])],
        "n": r["n_eval"],
        "points": r["points"].map("{:+.2f}".format),
        "paired": [f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(r["points_low"], r["points_high"])],
        "size_mb": r["size_mb"].round(1),
        "size %": r["size_pct"].round(1),
        "latency %": r["latency_pct"].round(1),
        "pareto_size": r["pareto_size"],
        "pareto_latency": r["pareto_latency"],
        "loaded": r["load_warning"].astype(bool),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args()
    minikit.setup(threads=args.threads)
    warnings.simplefilter("ignore", minikit.DataWarning)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 60)

    start = time.perf_counter()
    lab = Lab(minikit.get_baseline(dataset=minikit.BBC_HEADLINES, progress=False), progress=False)
    print(f"baseline ready in {time.perf_counter() - start:.0f} s: {lab.teacher.test_accuracy:.1%} on test")
    print("building and measuring (seconds; a cached step reads back):")
    seconds = build_and_measure(lab, RECIPES)

    results = lab.results()
    results = results[results["recipe"].isin(RECIPES)].reset_index(drop=True)  # only this bench's recipes
    results = mark_fronts(results)  # the fronts among this bench's recipes (simulated 4-bit rows: size front only)
    real = results["bits"] != 4
    n = int(results["n_eval"].iloc[0])
    print(f"\nbbc-headlines, test (n = {n}: one headline is {100 / n:.2f} points); accuracy with its 95 % Wilson "
          "interval, points against the baseline with the paired 95 % interval; size and latency as % of the "
          "baseline timed in the same run; 4-bit rows: packed size, float32 PyTorch latency (simulated):")
    print(front_table(results).to_string(index=False))
    front = results[results["pareto_size"]].sort_values("size_pct")
    print(f"\non the size front: {len(front)} recipe(s) (target ≥ 3: {'met' if len(front) >= 3 else 'NOT met'}): "
          + ", ".join(front["name"]))
    measured = results[real]
    only_real = measured[pareto_front(measured["size_pct"], measured["points"])].sort_values("size_pct")
    print(f"on the size front of real files only (no simulated 4-bit row): {len(only_real)} recipe(s) "
          f"(target ≥ 3: {'met' if len(only_real) >= 3 else 'NOT met'}): " + ", ".join(only_real["name"]))
    latency = results[results["pareto_latency"]].sort_values("latency_pct")
    print(f"on the latency front (simulated rows left out): {len(latency)} recipe(s): " + ", ".join(latency["name"]))
    if results["load_warning"].astype(bool).any():
        print("loaded rows (timed while other processes used the cores; not cached):",
              ", ".join(results.loc[results["load_warning"].astype(bool), "name"]))
    print("\nseconds per recipe (this run; cached steps read back):")
    print(seconds.round(0).to_string(index=False))


if __name__ == "__main__":
    main()
