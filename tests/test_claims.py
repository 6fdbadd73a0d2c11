"""The course's claims and size classes (minikit.claims)."""

from __future__ import annotations

from minikit import claims


def test_size_class_of():
    assert claims.size_class_of(14.4) == "5–20 M"
    assert claims.size_class_of(5.0) == "5–20 M"
    assert claims.size_class_of(20.0) is None  # between classes
    assert claims.size_class_of(66.9) == "50–100 M"
    assert claims.size_class_of(700) == "500 M+"
    assert claims.size_class_of(1.0) is None


def test_the_compression_claim_in_the_units_charts_use():
    claim = claims.COMPRESSION_CLAIM
    assert (claim.smaller, claim.faster, claim.points) == (0.70, 0.40, 2.0)
    assert claim.size_pct == 30  # "70 % smaller": 30 % of the size left
    assert claim.latency_pct == 60  # "40 % faster": 60 % of the latency left
    assert claim.points == 2
    assert claims.CompressionClaim(smaller=0.5, faster=0.25, points=1.0).size_pct == 50
    assert claims.CompressionClaim(smaller=0.5, faster=0.25, points=1.0).latency_pct == 75
