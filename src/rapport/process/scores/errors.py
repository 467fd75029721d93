"""The error a model fit raises when the data cannot support it."""

from __future__ import annotations

from rapport.errors import Unprocessable


class ScoreFitFailed(Unprocessable):
    """A model could not be fitted on the given data (too little data, or the optimiser did not converge)."""

    code = "score_fit_failed"
