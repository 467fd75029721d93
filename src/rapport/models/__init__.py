"""ORM tables, one module per aggregate; importing this package registers them all on Base.metadata."""

from rapport.models.account import ApiKey, Membership, UiSession, User, Workspace
from rapport.models.audit import AuditEntry
from rapport.models.idempotency import IdempotencyRecord
from rapport.models.job import Job

__all__ = [
    "ApiKey",
    "AuditEntry",
    "IdempotencyRecord",
    "Job",
    "Membership",
    "UiSession",
    "User",
    "Workspace",
]
