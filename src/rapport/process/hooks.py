"""How processing joins the event loop: the after-apply hooks registered at the composition root."""

from __future__ import annotations

from rapport.collect.processor import ProcessingHooks
from rapport.process import lifestyle, timezone, traits_service


def register(hooks: ProcessingHooks) -> None:
    """Add the computed-trait, lifestyle and timezone hooks (they run in each batch's transaction)."""
    # before the batch's profile updates are written: its computed patches ride in the same statement
    hooks.before_write.append(traits_service.apply_batch)
    hooks.after_apply.append(lifestyle.apply_batch)
    hooks.after_apply.append(timezone.apply_batch)
