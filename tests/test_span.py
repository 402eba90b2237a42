"""Energetic span of NEB paths: one hop, downhill, and a path through a deeper minimum."""

from __future__ import annotations

import pytest

from interphase_dft.span import energetic_span, span_barriers, span_points


def test_one_hop_span_is_the_usual_barrier() -> None:
    e = [0.0, 0.3, 0.5, 0.2, 0.1]
    assert energetic_span(e) == pytest.approx(0.5)
    assert span_barriers(e) == pytest.approx((0.5, 0.4))
    assert span_points(e) == (0, 2)


def test_downhill_path_has_zero_forward_span() -> None:
    e = [0.0, -0.2, -0.7, -1.4]
    assert span_barriers(e) == pytest.approx((0.0, 1.4))


def test_path_through_a_deeper_minimum_counts_from_that_minimum() -> None:
    """LiAl|Li2S-like: the highest image (1.11) is not the largest rise; 0.9 - (-0.5) is."""
    e = [0.0, 0.7, 1.11, -0.5, 0.9, 0.63]
    assert energetic_span(e) == pytest.approx(1.4)
    assert span_points(e) == (3, 4)
    assert span_barriers(e)[1] == pytest.approx(1.61)  # from 0.63 back over 1.11 via -0.5
    with pytest.raises(ValueError, match="empty"):
        energetic_span([])
