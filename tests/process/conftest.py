"""The CDNOW sample (Fader & Hardie), shipped under tests/data/cdnow, loaded once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CDNOW = Path(__file__).resolve().parent.parent / "data" / "cdnow"


@dataclass(frozen=True)
class CdnowSummary:
    """The published per-customer calibration summary (weeks)."""

    ids: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    zbar: np.ndarray


@dataclass(frozen=True)
class CdnowTransactions:
    """The raw transactions: sample customer id, day, dollar value."""

    ids: np.ndarray
    days: np.ndarray
    values: np.ndarray


@pytest.fixture(scope="session")
def cdnow_summary() -> CdnowSummary:
    """The 2,357 customers' x, t_x, T and mean repeat spend."""
    data = np.genfromtxt(CDNOW / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    return CdnowSummary(
        ids=data["ID"].astype(np.int64), x=data["x"], t_x=data["t_x"], T=data["T"], zbar=data["zbar"]
    )


@pytest.fixture(scope="session")
def cdnow_transactions() -> CdnowTransactions:
    """The 6,919 raw transactions of CDNOW_sample.txt."""
    raw = np.loadtxt(CDNOW / "CDNOW_sample.txt", dtype=str)
    days = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in raw[:, 2]], dtype="datetime64[D]")
    return CdnowTransactions(ids=raw[:, 1].astype(np.int64), days=days, values=raw[:, 4].astype(np.float64))
