"""Chapter 4 — the budget picker: the most accurate measured variant that fits a latency and a memory budget.

It reads a ``Benchmark.results`` table (or any table with the same columns); it measures nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from minikit.errors import MinikitError

if TYPE_CHECKING:
    import pandas as pd


class NoVariantFitsError(MinikitError, ValueError):
    """No measured variant meets the budget; the message names the closest one and by how much."""


@dataclass(frozen=True)
class Pick:
    """The chosen variant's row, and every variant with whether it fits and why not."""

    chosen: str
    table: pd.DataFrame  # name, accuracy, latency_ms, memory_mb, fits, reason
    latency_budget_ms: float
    memory_budget_mb: float | None

    def __repr__(self) -> str:
        row = self.table.set_index("name").loc[self.chosen]
        return (f"Pick({self.chosen!r}: accuracy {row['accuracy']:.2%}, {row['latency_ms']:.2f} ms, "
                f"{row['memory_mb']:.1f} MB; {int((~self.table['fits']).sum())} rejected)")


def _budget(value, name: str, unit: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number. Fix: give it in {unit}, e.g. {name}=20.") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name}={value!r}: a budget must be a finite number of {unit} above 0.")
    return number


def _over(value: float, budget: float, unit: str, decimals: int) -> str:
    """"16.00 ms > 3.5 ms"; where the two would read alike ("11.70 > 11.7"), more decimals for both."""
    if f"{value:.{decimals}f}" != f"{budget:.{decimals}f}":
        return f"{value:.{decimals}f} {unit} > {budget:g} {unit}"
    while decimals < 6 and f"{value:.{decimals}f}" == f"{budget:.{decimals}f}":
        decimals += 1
    return f"{value:.{decimals}f} {unit} > {budget:.{decimals}f} {unit}"


def pick_variant(results: pd.DataFrame, latency_budget_ms: float, memory_budget_mb: float | None = None,
                 latency_column: str = "latency_p50_ms", memory_column: str = "peak_memory_mb") -> Pick:
    """The most accurate variant whose batch-1 latency and memory fit the budgets (ties: faster, then smaller).

    ``results`` is a ``Benchmark.results`` table (or any table with name, accuracy and the two
    columns). Raises ``NoVariantFitsError`` naming the closest variant when none fits.
    """
    import pandas as pd
    latency_budget = _budget(latency_budget_ms, "latency_budget_ms", "ms")
    memory_budget = None if memory_budget_mb is None else _budget(memory_budget_mb, "memory_budget_mb", "MB")
    needed = {"name", "accuracy", latency_column} | ({memory_column} if memory_budget is not None else set())
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"The results table lacks {sorted(missing)} (it has {list(results.columns)}). "
                         "Fix: pass Benchmark.results, or name your columns with latency_column=/memory_column=.")
    if results.empty:
        raise ValueError("The results table is empty: measure some variants first (Benchmark.run()).")
    table = pd.DataFrame({"name": results["name"], "accuracy": results["accuracy"].astype(float),
                          "latency_ms": results[latency_column].astype(float),
                          "memory_mb": (results[memory_column].astype(float) if memory_column in results
                                        else np.nan)}).reset_index(drop=True)
    over_latency = table["latency_ms"] / latency_budget - 1
    over_memory = (table["memory_mb"] / memory_budget - 1) if memory_budget is not None else over_latency * 0 - 1
    reasons = []
    for i, row in table.iterrows():
        why = []
        if over_latency[i] > 0:
            why.append(_over(row["latency_ms"], latency_budget, "ms", 2))
        if memory_budget is not None and over_memory[i] > 0:
            why.append(_over(row["memory_mb"], memory_budget, "MB", 1))
        reasons.append("; ".join(why))
    table["fits"] = [not r for r in reasons]
    fitting = table[table["fits"]]
    if fitting.empty:
        worst = np.maximum(over_latency, over_memory)
        i = int(np.argmin(worst.to_numpy()))
        row = table.iloc[i]
        budget = f"{latency_budget:g} ms" + (f" and {memory_budget:g} MB" if memory_budget is not None else "")
        raise NoVariantFitsError(
            f"No variant fits {budget}. Closest: {row['name']!r} ({reasons[i]}, {worst[i]:.0%} over). "
            f"Fix: raise the budget by that much, or measure a smaller or faster variant.")
    best = fitting.sort_values(["accuracy", "latency_ms", "memory_mb"], ascending=[False, True, True]).iloc[0]
    for i, row in table.iterrows():
        if row["fits"] and row["name"] != best["name"]:
            reasons[i] = f"fits, but less accurate ({row['accuracy']:.2%} vs {best['accuracy']:.2%})" \
                if row["accuracy"] < best["accuracy"] else "fits, as accurate but slower or larger"
    table["reason"] = ["chosen" if n == best["name"] else r for n, r in zip(table["name"], reasons)]
    return Pick(str(best["name"]), table, latency_budget, memory_budget)


__all__ = ["NoVariantFitsError", "Pick", "pick_variant"]
