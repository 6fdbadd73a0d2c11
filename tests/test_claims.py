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
