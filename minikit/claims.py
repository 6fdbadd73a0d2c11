"""What the course's source texts claim, written once: the lab, the report and the charts take it from here.

- A compressed model is ~70 % smaller and ~40 % faster with < 2 points of accuracy lost
  (``COMPRESSION_CLAIM``).
- 5–20 M-parameter models answer in ~10 ms, 50–100 M in ~40 ms, and 500 M+ in > 100 ms
  (``SIZE_CLASSES``, one row per class).

Part of the bottom layer: it imports nothing of minikit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CompressionClaim:
    """A compressed model against its baseline: this much smaller, this much faster, at most this many points lost."""

    smaller: float  # share of the size removed
    faster: float  # share of the latency removed
    points: float  # accuracy points lost, at most (a positive number)

    @property
    def size_pct(self) -> float:
        """The size left, in % of the baseline's (30 for "70 % smaller")."""
        return round(100 * (1 - self.smaller), 9)

    @property
    def latency_pct(self) -> float:
        """The latency left, in % of the baseline's (60 for "40 % faster")."""
        return round(100 * (1 - self.faster), 9)


COMPRESSION_CLAIM = CompressionClaim(smaller=0.70, faster=0.40, points=2.0)

# "5–20 M parameters ≈ 10 ms, 50–100 M ≈ 40 ms, 500 M+ > 100 ms" (batch 1).
# ``SIZE_CLASSES``, the table, is built from these columns on first use (module ``__getattr__``), so importing
# minikit does not import pandas.
_SIZE_CLASS_COLUMNS = {
    "size_class": ["5–20 M", "50–100 M", "500 M+"],
    "params_lo_m": [5.0, 50.0, 500.0],
    "params_hi_m": [20.0, 100.0, 2000.0],
    "claimed_ms": [10.0, 40.0, 100.0],
    "claim": ["≈ 10 ms", "≈ 40 ms", "> 100 ms"],
}

SIZE_CLASSES: pd.DataFrame  # one row per class, from _SIZE_CLASS_COLUMNS on first use


def __getattr__(name: str) -> pd.DataFrame:
    """``SIZE_CLASSES`` on first use (PEP 562); any other missing name is an AttributeError."""
    if name == "SIZE_CLASSES":
        import pandas as pd

        table = globals()["SIZE_CLASSES"] = pd.DataFrame(_SIZE_CLASS_COLUMNS)  # built once, then a plain global
        return table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def size_class_of(params_m: float) -> str | None:
    """The source's size class for a parameter count in millions, or None between classes."""
    columns = _SIZE_CLASS_COLUMNS
    for size_class, lo, hi in zip(columns["size_class"], columns["params_lo_m"], columns["params_hi_m"]):
        if lo <= params_m < hi:
            return size_class
    return None


__all__ = ["COMPRESSION_CLAIM", "CompressionClaim", "SIZE_CLASSES", "size_class_of"]
