"""Propensity: the probability that a profile does an event within N days, validated on a time holdout.

``train`` fits a scikit-learn classifier on the older rows and measures it on the newest ones (or on a holdout
mask the caller made). The model keeps what it was measured on: holdout AUC with a one-sided Mann-Whitney
p-value and a Hanley-McNeil 95% interval, the Brier score and a 10-bin reliability table. It is ``usable``
only when the AUC is at least 0.55, significantly above 0.5 (p < 0.05) and the holdout has at least 10
positives and 10 negatives; otherwise ``reasons`` says why and a service must not use it silently.
The model that is measured is the model that predicts (it is not refitted on the holdout).

Example::

    model = train(features, labels, ["orders_90d", "days_since_last"], reference_dates=dates)
    if model.usable:
        probabilities = model.predict(features_now)
    stored = model.to_bytes(); summary = model.summary()   # summary is JSON-able
"""

from __future__ import annotations

import math
import pickle
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import sklearn
from numpy.typing import ArrayLike, NDArray
from scipy.stats import mannwhitneyu
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from rapport.process.scores.errors import ScoreFitFailed
from rapport.process.scores.summary import to_days

Algorithm = Literal["gradient_boosting", "logistic"]

MIN_AUC = 0.55
MAX_P_VALUE = 0.05
MIN_HOLDOUT_CLASS = 10
RELIABILITY_BINS = 10


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of predicted probability [lower, upper) on the holdout: how many, predicted vs observed."""

    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


@dataclass(frozen=True, slots=True)
class Validation:
    """How the model did on the holdout."""

    auc: float
    auc_p_value: float
    auc_ci_low: float
    auc_ci_high: float
    brier: float
    reliability: tuple[ReliabilityBin, ...]
    n_train: int
    n_holdout: int
    train_positive_rate: float
    holdout_positive_rate: float


@dataclass(frozen=True)
class PropensityModel:
    """A trained, validated classifier; ``predict`` returns the probability of the event."""

    feature_names: tuple[str, ...]
    algorithm: Algorithm
    estimator: Any
    validation: Validation
    usable: bool
    reasons: tuple[str, ...]
    holdout_from: str | None = None
    threads: int = 1
    sklearn_version: str = field(default=sklearn.__version__)

    def predict(self, features: ArrayLike) -> NDArray[np.float64]:
        """Return the probability of the event for each row of ``features``."""
        matrix = _matrix(features, len(self.feature_names))
        with threadpool_limits(limits=self.threads):
            return np.asarray(self.estimator.predict_proba(matrix)[:, 1], dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-able description: features, metrics, reliability table, usable and why."""
        v = self.validation
        return {
            "algorithm": self.algorithm,
            "feature_names": list(self.feature_names),
            "usable": self.usable,
            "reasons": list(self.reasons),
            "auc": _number(v.auc),
            "auc_p_value": _number(v.auc_p_value),
            "auc_ci": [_number(v.auc_ci_low), _number(v.auc_ci_high)],
            "brier": _number(v.brier),
            "reliability": [
                {
                    "lower": b.lower,
                    "upper": b.upper,
                    "count": b.count,
                    "mean_predicted": b.mean_predicted,
                    "observed_rate": b.observed_rate,
                }
                for b in v.reliability
            ],
            "n_train": v.n_train,
            "n_holdout": v.n_holdout,
            "train_positive_rate": _number(v.train_positive_rate),
            "holdout_positive_rate": _number(v.holdout_positive_rate),
            "holdout_from": self.holdout_from,
            "sklearn_version": self.sklearn_version,
        }

    def to_bytes(self) -> bytes:
        """Serialise the whole model (estimator included) for storage: compressed pickle."""
        return zlib.compress(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL), 6)

    @staticmethod
    def from_bytes(data: bytes) -> PropensityModel:
        """Load a model written by ``to_bytes``; only ever pass bytes Rapport itself stored (it unpickles)."""
        # Unpickling runs code: these bytes only ever come from Rapport's own score storage.
        model = pickle.loads(zlib.decompress(data))  # noqa: S301
        if not isinstance(model, PropensityModel):
            raise pickle.UnpicklingError("the bytes do not hold a PropensityModel")
        return model


def _number(value: float) -> float | None:
    """Return ``value``, or None when it is NaN (JSON has no NaN)."""
    return None if math.isnan(value) else value


def _matrix(features: ArrayLike, width: int) -> NDArray[np.float64]:
    """Return ``features`` as a float matrix of ``width`` columns (NaN marks a missing value)."""
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != width:
        raise ValueError(f"features must be a 2-D array with {width} columns")
    return matrix


def _estimator(algorithm: Algorithm, seed: int) -> Pipeline | HistGradientBoostingClassifier:
    """Return an unfitted classifier; both handle missing values."""
    if algorithm == "gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.1, early_stopping=True, random_state=seed
        )
    if algorithm == "logistic":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
    raise ValueError(f"unknown algorithm {algorithm!r}")


def holdout_by_time(reference_dates: ArrayLike, *, fraction: float = 0.2) -> tuple[NDArray[np.bool_], str]:
    """Return a mask of the newest rows (dates at or after the cutoff) and the cutoff as text."""
    if not 0 < fraction < 1:
        raise ValueError("the holdout fraction must lie in (0, 1)")
    dates = np.asarray(reference_dates)
    if dates.ndim != 1 or dates.size == 0:
        raise ValueError("reference_dates must be a non-empty one-dimensional array")
    ordered = np.sort(dates)
    cutoff = ordered[min(math.floor(dates.size * (1 - fraction)), dates.size - 1)]
    return dates >= cutoff, str(cutoff)


def reliability_table(
    labels: ArrayLike, probabilities: ArrayLike, *, bins: int = RELIABILITY_BINS
) -> tuple[ReliabilityBin, ...]:
    """Return equal-width bins over [0, 1] (the last includes 1) with predicted and observed rates."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    index = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    table = []
    for i in range(bins):
        n = int(counts[i])
        table.append(
            ReliabilityBin(
                lower=i / bins,
                upper=(i + 1) / bins,
                count=n,
                mean_predicted=float(predicted[i] / n) if n else None,
                observed_rate=float(observed[i] / n) if n else None,
            )
        )
    return tuple(table)


def auc_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """Return the Hanley-McNeil (1982) 95% interval of an AUC, clipped to [0, 1]."""
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    variance = (
        auc * (1.0 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = 1.959963984540054 * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _validate(labels: NDArray[np.int8], probabilities: NDArray[np.float64]) -> tuple[float, float]:
    """Return the AUC and the one-sided Mann-Whitney p-value that it exceeds 0.5."""
    positive = probabilities[labels == 1]
    negative = probabilities[labels == 0]
    if positive.size == 0 or negative.size == 0:
        return float("nan"), 1.0
    auc = float(roc_auc_score(labels, probabilities))
    p_value = float(mannwhitneyu(positive, negative, alternative="greater", method="asymptotic").pvalue)
    return auc, p_value


def train(
    features: ArrayLike,
    labels: ArrayLike,
    feature_names: Sequence[str],
    *,
    reference_dates: ArrayLike | None = None,
    holdout: ArrayLike | None = None,
    holdout_fraction: float = 0.2,
    label_window: np.timedelta64 | None = None,
    algorithm: Algorithm = "gradient_boosting",
    seed: int = 0,
    threads: int = 1,
) -> PropensityModel:
    """Fit on the older rows, validate on the newest (by ``reference_dates``) or on a ``holdout`` mask.

    Each row describes a profile as of its reference date, labelled 1 if the event followed within the
    label window. With ``label_window`` given, training rows whose window reaches past the holdout cutoff are
    left out, so no training label was observed during the holdout period. ``threads`` caps the OpenMP/BLAS
    threads: more than the free cores makes gradient boosting many times slower on a busy machine.
    """
    names = tuple(feature_names)
    matrix = _matrix(features, len(names))
    y = np.asarray(labels)
    if y.shape != (matrix.shape[0],) or not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be one 0/1 value per row of features")
    y = y.astype(np.int8)
    if (reference_dates is None) == (holdout is None):
        raise ValueError("give exactly one of reference_dates or holdout")
    if holdout is not None:
        mask = np.asarray(holdout, dtype=bool)
        if mask.shape != y.shape:
            raise ValueError("holdout must be one boolean per row")
        training = ~mask
        holdout_from = None
    else:
        dates = np.asarray(reference_dates)
        if dates.dtype == object:  # datetime/date objects: compare as calendar days
            dates = to_days(dates)
        if dates.shape != y.shape:
            raise ValueError("reference_dates must be one date per row")
        mask, holdout_from = holdout_by_time(dates, fraction=holdout_fraction)
        training = ~mask
        if label_window is not None:
            cutoff = dates[mask].min()
            training &= dates + label_window <= cutoff
    if not mask.any():
        raise ScoreFitFailed("the holdout is empty")
    train_y = y[training]
    if np.unique(train_y).size < 2:
        raise ScoreFitFailed(
            "the training rows need both profiles who did the event and profiles who did not"
        )
    estimator = _estimator(algorithm, seed)
    with threadpool_limits(limits=threads):
        estimator.fit(matrix[training], train_y)
        probabilities = np.asarray(estimator.predict_proba(matrix[mask])[:, 1], dtype=np.float64)
    holdout_y = y[mask]
    positives = int(holdout_y.sum())
    negatives = int(holdout_y.size - positives)
    auc, p_value = _validate(holdout_y, probabilities)
    ci = auc_interval(auc, positives, negatives) if positives and negatives else (float("nan"),) * 2
    reasons = []
    if positives < MIN_HOLDOUT_CLASS or negatives < MIN_HOLDOUT_CLASS:
        reasons.append(
            f"the holdout has {positives} positives and {negatives} negatives; "
            f"at least {MIN_HOLDOUT_CLASS} of each are needed"
        )
    if not auc >= MIN_AUC:
        reasons.append(f"holdout AUC {auc:.3f} is below {MIN_AUC}")
    if not p_value < MAX_P_VALUE:
        reasons.append(f"holdout AUC is not significantly above 0.5 (one-sided p = {p_value:.3g})")
    validation = Validation(
        auc=auc,
        auc_p_value=p_value,
        auc_ci_low=ci[0],
        auc_ci_high=ci[1],
        brier=float(brier_score_loss(holdout_y, probabilities)) if holdout_y.size else float("nan"),
        reliability=reliability_table(holdout_y, probabilities),
        n_train=int(train_y.size),
        n_holdout=int(holdout_y.size),
        train_positive_rate=float(train_y.mean()),
        holdout_positive_rate=float(holdout_y.mean()) if holdout_y.size else float("nan"),
    )
    return PropensityModel(
        feature_names=names,
        algorithm=algorithm,
        estimator=estimator,
        validation=validation,
        usable=not reasons,
        reasons=tuple(reasons),
        holdout_from=holdout_from,
        threads=threads,
    )
