"""The names and types of the scores a profile can hold (``ProfileScores.scores``), for the services that
write them and the catalogues that let segments and templates name them."""

from __future__ import annotations

from typing import Literal

RFM_KEYS = ("rfm_r", "rfm_f", "rfm_m", "rfm_segment", "loyalty_score", "loyalty_level")
CLV_KEYS = ("clv_12m", "p_alive", "churn_danger", "churn_band", "value_tier", "expected_purchases_90d")
#: A propensity model ``name`` writes ``propensity_<name>`` (a probability).
PROPENSITY_PREFIX = "propensity_"

_NAMES = {"rfm_segment", "loyalty_level", "churn_band", "value_tier"}
#: Every fixed score and its type as segments see it.
TYPES: dict[str, Literal["number", "string"]] = {
    key: "string" if key in _NAMES else "number" for key in (*RFM_KEYS, *CLV_KEYS)
}

#: The job a finished score run enqueues (one per run) so that segments on scores follow at once; the
#: segments domain registers its handler (``rapport.segments.score_refresh``).
SCORED_JOB = "segments.after_scores"


def is_score(name: str) -> bool:
    """Tell whether ``name`` is a score a run writes (a fixed score or a propensity)."""
    return name in TYPES or name.startswith(PROPENSITY_PREFIX)
