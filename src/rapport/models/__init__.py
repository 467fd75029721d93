"""ORM tables, one module per aggregate; importing this package registers them all on Base.metadata."""

from rapport.models.account import ApiKey, Membership, UiSession, User, Workspace
from rapport.models.audit import AuditEntry
from rapport.models.campaign import Campaign, CampaignConversion, CampaignRecipient, CampaignVariant
from rapport.models.catalog import Product
from rapport.models.channel_state import PushSubscriptionRecord, WebhookReceipt
from rapport.models.consent import ConsentRecord, Subscription, Topic
from rapport.models.content import MessageTemplate, Snippet
from rapport.models.event import Event, QuarantinedEvent
from rapport.models.idempotency import IdempotencyRecord
from rapport.models.job import Job
from rapport.models.message import Message, SendCounter
from rapport.models.process import ComputedTrait, LifestyleRow, LifestyleTable, ScoreRun
from rapport.models.profile import (
    Identity,
    Profile,
    ProfileMerge,
    ProfileScores,
    Suppression,
    TraitChange,
)
from rapport.models.segment import Segment, SegmentMember

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Campaign",
    "CampaignConversion",
    "CampaignRecipient",
    "CampaignVariant",
    "ComputedTrait",
    "ConsentRecord",
    "Event",
    "IdempotencyRecord",
    "Identity",
    "Job",
    "LifestyleRow",
    "LifestyleTable",
    "Membership",
    "Message",
    "MessageTemplate",
    "Product",
    "Profile",
    "ProfileMerge",
    "ProfileScores",
    "PushSubscriptionRecord",
    "QuarantinedEvent",
    "ScoreRun",
    "Segment",
    "SegmentMember",
    "SendCounter",
    "Snippet",
    "Subscription",
    "Suppression",
    "Topic",
    "TraitChange",
    "UiSession",
    "User",
    "WebhookReceipt",
    "Workspace",
]
