"""Stable assignment of a campaign's recipients to arms: control, a variant, or waiting for the winner.

Pure: the same campaign seed and profile id always give the same arm, so a re-run (or a crash and retry)
assigns nobody differently, and the control group stays the same people for the whole campaign.

    plan = ArmPlan(control_percent=10, variants=(("A", 1), ("B", 1)), test_percent=20)
    arm_for(plan, seed="campaign:7", profile_id=42)   # "control", "A", "B" or "" (waiting)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

CONTROL = "control"
WAITING = ""


def unit(seed: str, profile_id: int, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, profile, salt)."""
    digest = hashlib.sha256(f"{seed}:{salt}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class ArmPlan:
    """How a campaign splits its audience.

    ``control_percent`` of everyone gets nothing; of the rest, ``test_percent`` (0: everyone) is split over
    ``variants`` by weight and the others wait for the winner. With a decided ``winner`` nobody waits.
    """

    control_percent: float
    variants: Sequence[tuple[str, int]]
    test_percent: float = 0.0
    winner: str | None = None


def arm_for(plan: ArmPlan, *, seed: str, profile_id: int) -> str:
    """Return the arm of ``profile_id``: ``control``, a variant key, or ``""`` (waiting for the winner)."""
    if not plan.variants:
        raise ValueError("a campaign needs at least one variant")
    if plan.control_percent > 0 and unit(seed, profile_id, "control") * 100 < plan.control_percent:
        return CONTROL
    in_test = plan.test_percent <= 0 or unit(seed, profile_id, "test") * 100 < plan.test_percent
    if not in_test:
        return plan.winner if plan.winner is not None else WAITING
    return pick_weighted(plan.variants, unit(seed, profile_id, "variant"))


def pick_weighted(variants: Sequence[tuple[str, int]], u: float) -> str:
    """Return the variant whose cumulative weight share covers ``u`` in [0, 1)."""
    total = sum(max(weight, 0) for _, weight in variants)
    if total <= 0:
        raise ValueError("variant weights must add up to more than 0")
    point = u * total
    running = 0
    for key, weight in variants:
        running += max(weight, 0)
        if point < running:
            return key
    return variants[-1][0]
