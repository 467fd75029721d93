"""Propensity: a real signal gives a usable model; noise is flagged; calibration and storage are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rapport.process.scores import propensity
from rapport.process.scores.errors import ScoreFitFailed

NAMES = ["orders_90d", "days_since_last", "email_clicks"]


def _population(n: int, seed: int, signal: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profiles as of weekly reference dates; the event follows with a logistic probability of the features."""
    rng = np.random.default_rng(seed)
    features = np.column_stack([rng.poisson(2.0, n), rng.uniform(0, 120, n), rng.poisson(1.0, n)]).astype(
        float
    )
    features[rng.random(n) < 0.05, 2] = np.nan  # a trait some profiles do not have yet
    logit = -1.0 + signal * (0.6 * features[:, 0] - 0.02 * features[:, 1])
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    dates = np.datetime64("2024-01-01") + 7 * rng.integers(0, 20, n).astype("timedelta64[D]")
    return features, labels, dates


@pytest.mark.parametrize("algorithm", ["gradient_boosting", "logistic"])
def test_a_real_signal_gives_a_usable_model(algorithm: propensity.Algorithm) -> None:
    features, labels, dates = _population(6000, seed=1, signal=1.5)
    model = propensity.train(features, labels, NAMES, reference_dates=dates, algorithm=algorithm)
    v = model.validation
    assert model.usable, model.reasons
    assert model.reasons == ()
    assert v.auc > 0.75
    assert v.auc_p_value < 1e-6
    assert v.auc_ci_low < v.auc < v.auc_ci_high
    assert v.brier < 0.2
    # The holdout is the newest 20%: everything on or after the cutoff, nothing before it.
    cutoff = np.datetime64(model.holdout_from)
    assert v.n_holdout == int((dates >= cutoff).sum())
    assert v.n_train == int((dates < cutoff).sum())
    probabilities = model.predict(features[:10])
    assert probabilities.shape == (10,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_noise_is_flagged_unusable() -> None:
    features, _, dates = _population(6000, seed=2, signal=0.0)
    labels = np.random.default_rng(99).integers(0, 2, features.shape[0])
    model = propensity.train(features, labels, NAMES, reference_dates=dates)
    assert not model.usable
    assert any("AUC" in reason for reason in model.reasons)
    assert model.summary()["usable"] is False


def test_too_small_a_holdout_is_flagged() -> None:
    features, labels, _ = _population(400, seed=3, signal=2.0)
    mask = np.zeros(400, dtype=bool)
    mask[:12] = True  # too few of each class to judge
    model = propensity.train(features, labels, NAMES, holdout=mask)
    assert not model.usable
    assert any("at least 10 of each" in reason for reason in model.reasons)


def test_reliability_table_counts_and_rates_are_exact() -> None:
    labels = [0, 1, 1, 0, 1, 1, 0]
    probabilities = [0.0, 0.05, 0.15, 0.55, 0.95, 1.0, 0.1]
    table = propensity.reliability_table(labels, probabilities)
    assert len(table) == 10
    assert [b.count for b in table] == [2, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    assert sum(b.count for b in table) == len(labels)
    assert table[0].mean_predicted == pytest.approx(0.025)
    assert table[0].observed_rate == 0.5
    assert table[1].mean_predicted == pytest.approx(0.125)
    assert table[1].observed_rate == 0.5
    assert table[2].mean_predicted is None and table[2].observed_rate is None
    assert table[9].observed_rate == 1.0
    assert (table[9].lower, table[9].upper) == (0.9, 1.0)


def test_model_calibration_table_covers_the_holdout() -> None:
    features, labels, dates = _population(3000, seed=4, signal=1.0)
    model = propensity.train(features, labels, NAMES, reference_dates=dates)
    table = model.validation.reliability
    assert sum(b.count for b in table) == model.validation.n_holdout
    positives = sum(b.count * b.observed_rate for b in table if b.observed_rate is not None)
    assert positives == pytest.approx(model.validation.holdout_positive_rate * model.validation.n_holdout)


def test_label_window_keeps_training_labels_out_of_the_holdout_period() -> None:
    features, labels, dates = _population(3000, seed=5, signal=1.0)
    model = propensity.train(
        features, labels, NAMES, reference_dates=dates, label_window=np.timedelta64(14, "D")
    )
    cutoff = np.datetime64(model.holdout_from)
    assert model.validation.n_train == int((dates + np.timedelta64(14, "D") <= cutoff).sum())
    assert model.validation.n_train < int((dates < cutoff).sum())


def test_reference_dates_may_be_python_dates() -> None:
    features, labels, dates = _population(2000, seed=9, signal=1.5)
    as_numpy = propensity.train(features, labels, NAMES, reference_dates=dates)
    as_python = propensity.train(features, labels, NAMES, reference_dates=dates.tolist())
    assert as_python.holdout_from == as_numpy.holdout_from
    assert as_python.validation == as_numpy.validation


def test_round_trip_through_bytes_and_json() -> None:
    features, labels, dates = _population(2000, seed=6, signal=1.0)
    model = propensity.train(features, labels, NAMES, reference_dates=dates)
    loaded = propensity.PropensityModel.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    assert loaded.summary() == model.summary()
    summary = json.loads(json.dumps(model.summary(), allow_nan=False))
    assert summary["feature_names"] == NAMES
    assert summary["auc"] == model.validation.auc
    assert len(summary["reliability"]) == 10


def test_auc_interval_matches_hanley_mcneil() -> None:
    # A = 0.8, 50 positives, 50 negatives: Q1 = 0.8/1.2, Q2 = 1.28/1.8,
    # SE² = (0.16 + 49·(Q1 − 0.64) + 49·(Q2 − 0.64)) / 2500 = 0.00198044…, SE = 0.044502.
    low, high = propensity.auc_interval(0.8, 50, 50)
    assert (high - low) / 2 / 1.959963984540054 == pytest.approx(0.044502, abs=1e-6)
    assert propensity.auc_interval(0.99, 5, 5)[1] == 1.0


def test_bad_input_is_refused() -> None:
    features, labels, dates = _population(200, seed=7, signal=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        propensity.train(features, labels, NAMES)
    with pytest.raises(ValueError, match="columns"):
        propensity.train(features[:, :2], labels, NAMES, reference_dates=dates)
    with pytest.raises(ValueError, match="0/1"):
        propensity.train(features, labels * 2, NAMES, reference_dates=dates)
    with pytest.raises(ScoreFitFailed):
        propensity.train(features, np.zeros(200, dtype=int), NAMES, reference_dates=dates)
    model = propensity.train(features, labels, NAMES, reference_dates=dates)
    with pytest.raises(ValueError, match="3 columns"):
        model.predict(np.zeros((2, 4)))
