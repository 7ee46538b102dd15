"""Drift statistics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from fraudstream.monitoring.drift import jensen_shannon_divergence, population_stability_index


def test_identical_distributions_have_no_drift() -> None:
    assert population_stability_index([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0)
    assert jensen_shannon_divergence([0.2, 0.8], [2, 8]) == pytest.approx(0.0)


def test_psi_matches_a_hand_computed_value() -> None:
    # ref (0.5, 0.5), live (0.9, 0.1): 0.4 ln(1.8) + (-0.4) ln(0.2) = 0.23511 + 0.64378
    expected = 0.4 * math.log(1.8) - 0.4 * math.log(0.2)
    assert population_stability_index([5, 5], [9, 1], epsilon=0) == pytest.approx(expected)
    assert expected == pytest.approx(0.878890, abs=1e-6)


def test_psi_is_symmetric_and_grows_with_the_shift() -> None:
    small = population_stability_index([0.5, 0.5], [0.6, 0.4])
    large = population_stability_index([0.5, 0.5], [0.9, 0.1])
    assert small == pytest.approx(population_stability_index([0.6, 0.4], [0.5, 0.5]))
    assert 0 < small < 0.1 < large


def test_empty_bins_get_epsilon_instead_of_an_infinite_psi() -> None:
    value = population_stability_index([1, 0], [0, 1], epsilon=1e-4)
    assert math.isfinite(value)
    # shares become (1, 1e-4) / 1.0001 and the reverse: PSI = 2 (p - q) ln(p / q)
    p, q = 1 / 1.0001, 1e-4 / 1.0001
    assert value == pytest.approx(2 * (p - q) * math.log(p / q), rel=1e-6)


def test_js_matches_a_hand_computed_value_and_is_bounded() -> None:
    # ref (0.5, 0.5), live (1, 0): M = (0.75, 0.25)
    # 0.5 [0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25)] + 0.5 [1 log2(1/0.75)] = 0.311278
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(2)) \
        + 0.5 * math.log2(1 / 0.75)
    assert jensen_shannon_divergence([1, 1], [1, 0], epsilon=0) == pytest.approx(expected)
    assert expected == pytest.approx(0.311278, abs=1e-6)
    assert jensen_shannon_divergence([1, 0], [0, 1], epsilon=0) == pytest.approx(1.0)


def test_mismatched_or_empty_histograms_are_refused() -> None:
    with pytest.raises(ValueError, match="bins"):
        population_stability_index([1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="no mass"):
        jensen_shannon_divergence([0, 0], [1, 1])
