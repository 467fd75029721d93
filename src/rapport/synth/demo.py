"""Fill the demo workspace with synthetic customers (implemented with the collect domain)."""

from __future__ import annotations

from rapport.runtime import Runtime


def fill_workspace(runtime: Runtime, *, workspace_id: int, customers: int, seed: int) -> None:
    """Generate ``customers`` synthetic customers with a year of events into the workspace."""
    raise NotImplementedError("the synthetic data generator arrives with the collect domain")
