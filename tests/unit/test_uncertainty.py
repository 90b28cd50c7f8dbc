"""Intervals from segmentation samples x QSM methods, calibrated split-conformally (deepnuclei.uncertainty)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepnuclei import uncertainty as unc

KEYS = ["session", "structure"]
DEFAULT = {"segmentation": "averaged", "qsm": "sharptv"}


def one_case() -> pd.DataFrame:
    """3 segmentation samples x 3 QSM methods of one nucleus: chi = base (by QSM) + shift (by labels)."""
    chi = {"sharptv": 100.0, "vsharptv": 90.0, "tkd": 70.0}
    shift = {"averaged": 0.0, "direct": 4.0, "mirrored": -2.0}
    volume = {"averaged": 500.0, "direct": 520.0, "mirrored": 490.0}
    return pd.DataFrame([{"session": "s1", "structure": "GP_L", "segmentation": seg, "qsm": qsm,
                          "chi_mean_ppb": chi[qsm] + shift[seg], "volume_mm3": volume[seg]}
                         for seg in shift for qsm in chi])


def test_summary_of_known_samples() -> None:
    summary = unc.summarise(one_case(), KEYS, DEFAULT).set_index("measure")
    chi, volume = summary.loc["chi_mean_ppb"], summary.loc["volume_mm3"]
    assert chi.estimate == 100.0 and chi.low == 68.0 and chi.high == 104.0
    assert chi.below == 32.0 and chi.above == 4.0 and chi.samples == 9
    assert volume.estimate == 500.0 and volume.below == 10.0 and volume.above == 20.0


def test_interval_from_known_samples_and_factor() -> None:
    summary = unc.summarise(one_case(), KEYS, DEFAULT)
    calibrations = [unc.Calibration("chi_mean_ppb", "all", 0.5, 20, symmetric=False),
                    unc.Calibration("volume_mm3", "all", 2.0, 20, symmetric=False)]
    table = unc.intervals(summary, calibrations).set_index("measure")
    # chi: floor 1 ppb -> 100 - 0.5 (32 + 1), 100 + 0.5 (4 + 1)
    assert table.loc["chi_mean_ppb", "lower"] == pytest.approx(83.5)
    assert table.loc["chi_mean_ppb", "upper"] == pytest.approx(102.5)
    # volume: floor 5 % of 500 = 25 -> 500 - 2 (10 + 25), 500 + 2 (20 + 25)
    assert table.loc["volume_mm3", "lower"] == pytest.approx(430.0)
    assert table.loc["volume_mm3", "upper"] == pytest.approx(590.0)
    symmetric = [unc.Calibration("chi_mean_ppb", "all", 0.5, 20)]  # the default: the larger side on both
    row = unc.intervals(summary, symmetric).set_index("measure").loc["chi_mean_ppb"]
    assert (row.lower, row.upper) == pytest.approx((83.5, 116.5))
    half = [unc.Calibration("chi_mean_ppb", "all", 0.5, 20, weight=0.5)]  # 100 -/+ 0.5 (0.5 x 32 + 1)
    row = unc.intervals(summary, half).set_index("measure").loc["chi_mean_ppb"]
    assert (row.lower, row.upper) == pytest.approx((91.5, 108.5))


def test_conformal_quantile_is_the_ceil_n_plus_one_rank() -> None:
    scores = np.arange(1.0, 20.0)  # n = 19: rank ceil(20 x 0.9) = 18
    assert unc.conformal_quantile(scores, 0.9) == 18.0
    assert unc.conformal_quantile(np.arange(1.0, 10.0), 0.9) == 9.0  # n = 9: rank 9, the largest
    assert math.isinf(unc.conformal_quantile(np.arange(1.0, 9.0), 0.9))  # n = 8: too few for 90 %
    assert unc.conformal_quantile([3.0, np.nan, 1.0, 2.0], 0.5) == 2.0  # NaN ignored: n = 3, rank 2
    with pytest.raises(ValueError, match="strictly between"):
        unc.conformal_quantile(scores, 1.0)


def test_calibration_factor_on_a_constructed_case() -> None:
    """19 cases of one nucleus, spread 9 ppb on both sides (+ the 1 ppb floor = scale 10), errors 1..19 ppb
    alternately above and below: scores 0.1 .. 1.9, factor the 18th smallest = 1.8."""
    summary = pd.DataFrame({"measure": "chi_mean_ppb", "estimate": 100.0, "below": 9.0, "above": 9.0,
                            "group": "network"}, index=range(19))
    errors = np.arange(1.0, 20.0) * np.where(np.arange(19) % 2 == 0, 1.0, -1.0)
    np.testing.assert_allclose(unc.scores(summary, 100.0 + errors), np.arange(1.0, 20.0) / 10.0)
    (calibration,) = unc.calibrate(summary, 100.0 + errors, coverage=0.9)
    assert calibration.group == "network" and calibration.cases == 19
    assert calibration.factor == pytest.approx(1.8)
    table = unc.intervals(summary, [calibration])
    np.testing.assert_allclose(table.lower, 82.0)
    np.testing.assert_allclose(table.upper, 118.0)
    assert unc.covered(table, 100.0 + errors).sum() == 18  # all but the largest error


def test_asymmetric_scores_use_the_truths_side() -> None:
    summary = pd.DataFrame({"measure": ["chi_mean_ppb"] * 2, "estimate": [100.0, 100.0], "below": [29.0, 29.0],
                            "above": [4.0, 4.0]})
    np.testing.assert_allclose(unc.scores(summary, [85.0, 110.0], symmetric=False), [0.5, 2.0])  # 15/30, 10/5
    np.testing.assert_allclose(unc.scores(summary, [85.0, 110.0], symmetric=True), [0.5, 10 / 30])


def test_groups_get_their_own_factor() -> None:
    summary = pd.DataFrame({"measure": "volume_mm3", "estimate": 1000.0, "below": 0.0, "above": 0.0,
                            "group": ["atlas"] * 10 + ["network"] * 10})
    truth = np.r_[np.full(10, 1100.0), np.full(10, 1010.0)]  # atlas 10 % off, network 1 %
    factors = {c.group: c.factor for c in unc.calibrate(summary, truth, 0.9)}
    assert factors == pytest.approx({"atlas": 2.0, "network": 0.2})  # error over the floor, 50 mm3


def test_calibration_learns_to_ignore_a_spread_that_says_nothing() -> None:
    """Errors of one size whatever the spread: with the weights to choose from, calibration gives the spread
    weight 0 (a constant width, the narrowest that covers); where errors grow with the spread, weight 1."""
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.0, 40.0, 400)
    summary = pd.DataFrame({"measure": "chi_mean_ppb", "estimate": 50.0, "below": spread, "above": spread})
    flat = 50.0 + rng.uniform(-5.0, 5.0, 400)
    (ignored,) = unc.calibrate(summary, flat, weights=unc.WEIGHTS)
    assert ignored.weight == 0.0 and ignored.factor == pytest.approx(4.5, abs=0.3)  # 90 % of |U(-5, 5)|, floor 1
    scaled = 50.0 + spread * rng.uniform(-1.0, 1.0, 400)
    (trusted,) = unc.calibrate(summary, scaled, weights=unc.WEIGHTS)
    assert trusted.weight == 1.0 and trusted.factor < 1.0


@pytest.mark.parametrize("coverage", [0.8, 0.9])
def test_coverage_on_synthetic_data_is_the_stated_rate(coverage: float) -> None:
    """Errors that scale with each case's spread, partly biased low (as a worse QSM method is): calibrated on
    one half, the intervals hold the truth of the other half at the stated rate (5000 cases: +-2.5 %, 3 SD)."""
    rng = np.random.default_rng(0)
    n = 10000
    spread = rng.uniform(2.0, 30.0, n)
    summary = pd.DataFrame({"measure": "chi_mean_ppb", "estimate": rng.uniform(0, 150, n),
                            "below": spread, "above": 0.3 * spread})
    truth = summary.estimate + 0.4 * spread * rng.standard_normal(n) - 0.2 * spread
    calibrations = unc.calibrate(summary[: n // 2], truth[: n // 2], coverage)
    held = unc.intervals(summary[n // 2:], calibrations)
    rate = unc.covered(held, truth[n // 2:]).mean()
    assert abs(rate - coverage) < 0.025
    uninformed = unc.calibrate(summary[: n // 2].assign(below=0.0, above=0.0), truth[: n // 2], coverage)
    flat = unc.intervals(summary[n // 2:].assign(below=0.0, above=0.0), uninformed)
    assert abs(unc.covered(flat, truth[n // 2:]).mean() - coverage) < 0.025
    # the spread carries the error's scale: at the same coverage the informed intervals are narrower
    assert (held.upper - held.lower).mean() < (flat.upper - flat.lower).mean()
