"""ORM tables, one module per aggregate; importing this package registers them all on Base.metadata."""

from rapport.models.account import ApiKey, Membership, UiSession, User, Workspace
from rapport.models.audit import AuditEntry
from rapport.models.consent import ConsentRecord, Subscription, Topic
from rapport.models.event import Event, QuarantinedEvent
from rapport.models.idempotency import IdempotencyRecord
from rapport.models.job import Job
from rapport.models.message import Message, SendCounter
from rapport.models.profile import Identity, Profile, ProfileMerge, Suppression, TraitChange

__all__ = [
    "ApiKey",
    "AuditEntry",
    "ConsentRecord",
    "Event",
    "IdempotencyRecord",
    "Identity",
    "Job",
    "Membership",
    "Message",
    "Profile",
    "ProfileMerge",
    "QuarantinedEvent",
    "SendCounter",
    "Subscription",
    "Suppression",
    "Topic",
    "TraitChange",
    "UiSession",
    "User",
    "Workspace",
]
