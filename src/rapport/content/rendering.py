"""Render a template for one recipient: facts loaded once, block variants chosen, every part rendered.

``TemplateRenderer`` is prepared once per template (snippets read, conditions parsed, catalogue built) and
renders it for any number of recipients; ``render`` collects an error per failing part (the preview shows
them all), ``RenderOutcome.raise_for_errors`` turns them into one ``RenderFailed`` (a send fails that one
message, R22). All parts of one message share one time budget.

Parts: email ``subject``/``preheader``/``html``/``text`` (text made from the HTML when not written; the
preheader also goes into the HTML as hidden text after ``<body>``), sms ``body``, push and in-app fields,
webhook ``url`` and ``body`` (JSON after rendering). A part places a rule block with ``{{ blocks.NAME }}``;
each block's chosen variant is rendered in the mode of the part placing it (escaped in HTML, not in text).
"""

from __future__ import annotations

import html as html_lib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from time import perf_counter
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.catalog import service as products_service
from rapport.content import conditions, repository
from rapport.content.parts import HTML_PARTS, ONE_LINE_PARTS, spec_of
from rapport.content.stores import nearest_store, placed_stores
from rapport.models import MessageTemplate, Profile
from rapport.personalize import (
    Choice,
    ContextInputs,
    Recipient,
    RenderBudget,
    RenderFailed,
    RuleBlock,
    TemplateEngine,
    Variant,
    build_context,
    choose_variant,
    html_to_text,
    render_parts,
    single_line,
)
from rapport.process import score_repository, traits_service
from rapport.segments import catalog_service
from rapport.segments.ast import Node
from rapport.segments.errors import SegmentError
from rapport.segments.evaluator import EventFact, ProfileFacts

#: Snippets a render can see; a workspace with more has the first ones by name.
MAX_SNIPPETS = 500
BLOCK_REF = re.compile(r"\bblocks\.([A-Za-z_][A-Za-z0-9_]*)")
_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
#: Keys of ``extra_context`` that feed the context builder; any other key is a top-level variable.
CONTEXT_KEYS = ("event", "campaign", "links", "store", "catalog", "recommendations")


@cache
def default_engine() -> TemplateEngine:
    """The process's shared template engine (built on first use; it is thread-safe)."""
    return TemplateEngine()


@dataclass(frozen=True, slots=True)
class TemplateDraft:
    """What gets rendered: a saved template's fields, or unsaved edits (``id`` None)."""

    channel: str
    content: Mapping[str, str]
    blocks: Sequence[Mapping[str, Any]]
    id: int | None = None
    version: int | None = None

    @classmethod
    def of(cls, template: MessageTemplate) -> TemplateDraft:
        """Return the draft of a saved template."""
        return cls(
            channel=template.channel,
            content=dict(template.content or {}),
            blocks=list(template.blocks or []),
            id=template.id,
            version=template.version,
        )


@dataclass(frozen=True, slots=True)
class PartFailure:
    """One part that did not render."""

    part: str
    reason: str
    message: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A template rendered for one recipient: the parts by name and the variant chosen per block."""

    template_id: int | None
    template_version: int | None
    channel: str
    profile_id: int
    address: str | None
    parts: dict[str, str]
    choices: tuple[Choice, ...]
    text_generated: bool = False
    elapsed_ms: float = 0.0

    @property
    def variants(self) -> dict[str, str]:
        """Return ``{block: variant}`` (``default`` when no condition matched) to record with the message."""
        return {choice.block: choice.variant for choice in self.choices}


@dataclass(frozen=True, slots=True)
class RenderOutcome:
    """What ``TemplateRenderer.render`` produced: the message (parts that rendered) and the failures."""

    message: RenderedMessage
    failures: tuple[PartFailure, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)

    def raise_for_errors(self) -> RenderedMessage:
        """Return the message, or raise ``RenderFailed`` for the first failing part."""
        if self.failures:
            first = self.failures[0]
            raise RenderFailed(
                first.reason, f"{first.part}: {first.message}", line=first.line, column=first.column
            )
        return self.message


@dataclass(frozen=True, slots=True)
class _Block:
    name: str
    rule: RuleBlock
    broken: PartFailure | None = None


def _parse_blocks(blocks: Sequence[Mapping[str, Any]]) -> list[_Block]:
    parsed: list[_Block] = []
    for raw in blocks:
        name = str(raw.get("name") or "")
        variants: list[Variant] = []
        broken: PartFailure | None = None
        for index, variant in enumerate(raw.get("variants") or []):
            text = str(variant.get("condition") or "")
            try:
                node: Node | None = conditions.parse_condition(text)
            except SegmentError as err:
                broken = broken or PartFailure(
                    f"blocks.{name}.variants.{index + 1}.condition",
                    "condition_error",
                    err.reason,
                    err.line,
                    err.column,
                )
                node = None
            variants.append(Variant(node, str(variant.get("source") or ""), str(variant.get("name") or "")))
        rule = RuleBlock(name, tuple(variants), str(raw.get("default") or ""))
        parsed.append(_Block(name, rule, broken))
    return parsed


def exact_facts(
    db: Session, workspace_id: int, profile_ids: Sequence[int], at: datetime
) -> dict[int, dict[str, Any]]:
    """Return each profile's scores (``ProfileScores``) and its computed traits exact at ``at``, by id."""
    exact = dict(traits_service.read_computed(db, workspace_id, profile_ids, None, at))
    for pid, scores in score_repository.scores_of(db, workspace_id, profile_ids).items():
        exact[pid] = {**scores, **exact.get(pid, {})}
    return exact


def recipient_facts(
    db: Session, workspace_id: int, profile_ids: Sequence[int], at: datetime
) -> dict[int, tuple[dict[str, Any], list[str]]]:
    """Return each profile's computed traits and scores (stored, overridden by those exact at ``at``) and
    its active segments' names, sorted: what ``computed.*``, ``scores.*`` and ``segments`` show (a batch)."""
    ids = sorted(set(profile_ids))
    stored: dict[int, Mapping[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for pid, computed in db.execute(select(Profile.id, Profile.computed).where(Profile.id.in_(chunk))):
            stored[int(pid)] = computed or {}
    exact = exact_facts(db, workspace_id, ids, at)
    segments = repository.segment_names_for(db, workspace_id=workspace_id, profile_ids=ids)
    return {pid: (_merged(stored.get(pid), exact.get(pid, {})), sorted(segments.get(pid, ()))) for pid in ids}


def _merged(stored: Mapping[str, Any] | None, exact: Mapping[str, Any]) -> dict[str, Any]:
    """Stored computed traits (not the internal ``_`` ones), overridden by those exact at render time."""
    computed = {k: v for k, v in (stored or {}).items() if not k.startswith("_")}
    computed.update(exact)
    return computed


def profile_computed(profile: Profile, exact: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Return the profile's computed traits and scores: stored ones, overridden by those exact at render time."""
    return _merged(profile.computed, exact.get(profile.id, {}))


def address_of(profile: Profile, channel: str) -> str | None:
    """Return where a message of ``channel`` goes for this profile."""
    if channel == "email":
        return profile.email
    if channel == "sms":
        return profile.phone
    return str(profile.id)


def with_preheader(html: str, preheader: str) -> str:
    """Insert the preheader as hidden text at the start of the body (inbox previews show it)."""
    if not preheader.strip() or not html:
        return html
    hidden = (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all" aria-hidden="true">'
        f"{html_lib.escape(preheader)}</div>"
    )
    found = _BODY_TAG.search(html)
    if found is None:
        return hidden + html
    return html[: found.end()] + hidden + html[found.end() :]


class TemplateRenderer:
    """A template prepared for rendering to many recipients of one workspace."""

    def __init__(
        self,
        db: Session,
        *,
        workspace_id: int,
        draft: TemplateDraft,
        now: datetime,
        engine: TemplateEngine | None = None,
        snippets: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.workspace_id = workspace_id
        self.draft = draft
        self.now = now
        self.engine = engine or default_engine()
        self.spec = spec_of(draft.channel)
        self.snippets = (
            dict(snippets)
            if snippets is not None
            else repository.snippet_sources(db, workspace_id=workspace_id, limit=MAX_SNIPPETS)
        )
        self.blocks = _parse_blocks(draft.blocks)
        nodes = [v.condition for b in self.blocks for v in b.rule.variants if v.condition is not None]
        self.needs = conditions.needs(nodes)
        uses_catalog = self.needs.location or self.needs.subscriptions
        self.catalog = (
            catalog_service.compile_catalog(db, workspace_id=workspace_id) if uses_catalog else None
        )
        self.timezone, settings = repository.workspace_defaults(db, workspace_id=workspace_id)
        self.stores = placed_stores(settings)
        sources = [str(v) for v in draft.content.values() if v] + list(self.snippets.values())
        for block in self.blocks:
            sources += [block.rule.default, *(v.source for v in block.rule.variants)]
        named = products_service.referenced_product_ids(sources)
        self.products = (
            products_service.products_by_id(db, workspace_id=workspace_id, product_ids=named)
            if named
            else None
        )
        self.seed = f"template-{draft.id}" if draft.id is not None else "template-preview"
        self._prefetched_at: datetime | None = None
        self._computed: dict[int, dict[str, Any]] = {}
        self._segments: dict[int, set[str]] = {}

    # -- facts ---------------------------------------------------------------------------------------------

    def facts(self, profile: Profile, traits: Mapping[str, Any], segments: set[str]) -> ProfileFacts:
        """Load what this template's conditions read about ``profile`` (and nothing more)."""
        needs = self.needs
        events: list[EventFact] = []
        names = set(needs.events)
        if needs.messages:
            names |= {
                f"{channel}_{action}" for channel in conditions.CHANNELS for action in conditions.ACTIONS
            }
        if names:
            rows = repository.events_of(
                self.db, workspace_id=self.workspace_id, profile_id=profile.id, names=names
            )
            events = [EventFact(name, timestamp, properties) for name, timestamp, properties in rows]
        messages = conditions.engagements(events) if needs.messages else ()
        subscriptions = (
            repository.subscriptions_of(self.db, workspace_id=self.workspace_id, profile_id=profile.id)
            if needs.subscriptions
            else {}
        )
        lat, lon = traits.get("latitude"), traits.get("longitude")
        location = (
            (float(lat), float(lon))
            if isinstance(lat, int | float) and isinstance(lon, int | float)
            else None
        )
        return ProfileFacts(
            profile_id=str(profile.id),
            traits=traits,
            events=events,
            messages=messages,
            subscriptions=subscriptions,
            segments=frozenset(segments),
            location=location,
            timezone=profile.timezone or self.timezone,
        )

    def context(
        self,
        profile: Profile,
        computed: Mapping[str, Any],
        segments: set[str],
        extra_context: Mapping[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        """Build the render context of ``profile`` (see docs/templates.md for its variables)."""
        traits = dict(profile.traits or {})
        extra = dict(extra_context)
        picked = {key: extra.pop(key) for key in CONTEXT_KEYS if key in extra}
        locale = str(extra.pop("locale", None) or traits.get("locale") or "en_GB")
        timezone = str(extra.pop("timezone", None) or profile.timezone or self.timezone)
        currency = str(extra.pop("currency", None) or traits.get("currency") or "GBP")
        return build_context(
            ContextInputs(
                now=now,
                profile=traits,
                profile_id=str(profile.id),
                recipient=Recipient(
                    locale=locale,
                    timezone=timezone,
                    currency=currency,
                    channel=self.draft.channel,
                    address=address_of(profile, self.draft.channel),
                ),
                computed=computed,
                scores=computed,
                segments=sorted(segments),
                event=picked.get("event"),
                campaign=picked.get("campaign"),
                links=picked.get("links") or {},
                store=picked.get("store") or nearest_store(self.stores, traits),
                catalog=picked.get("catalog") or self.products,
                recommendations=picked.get("recommendations") or (),
                extra=extra,
            )
        )

    # -- rendering -----------------------------------------------------------------------------------------

    def prefetch(self, profiles: Sequence[Profile], *, now: datetime | None = None) -> None:
        """Read the computed traits and segment memberships of many recipients in a few queries (a batch).

        ``render_profile`` then uses them for these profiles at ``now`` (the renderer's time by default).
        """
        at = now or self.now
        ids = [p.id for p in profiles]
        self._prefetched_at = at
        self._computed = exact_facts(self.db, self.workspace_id, ids, at)
        self._segments = repository.segment_names_for(
            self.db, workspace_id=self.workspace_id, profile_ids=ids
        )

    def _facts_of(self, profile: Profile, at: datetime) -> tuple[dict[str, Any], set[str]]:
        if at == self._prefetched_at and profile.id in self._segments:
            return profile_computed(profile, self._computed), self._segments[profile.id]
        exact = exact_facts(self.db, self.workspace_id, [profile.id], at)
        segments = repository.segment_names_of(self.db, workspace_id=self.workspace_id, profile_id=profile.id)
        return profile_computed(profile, exact), segments

    def render_profile(
        self, profile: Profile, *, extra_context: Mapping[str, Any] | None = None, now: datetime | None = None
    ) -> RenderOutcome:
        """Render for a loaded profile; every failing part is reported, the others still render."""
        started = perf_counter()
        at = now or self.now
        computed, segments = self._facts_of(profile, at)
        context = self.context(profile, computed, segments, extra_context or {}, at)
        facts_traits = {**(profile.traits or {}), **computed}
        predicate = conditions.ConditionPredicate(
            self.facts(profile, facts_traits, segments), now=at, catalog=self.catalog, seed=self.seed
        )
        budget = self.engine.new_budget()
        failures: list[PartFailure] = []
        chosen: dict[str, tuple[str, str, Choice]] = {}  # block -> (where, source, choice)
        for block in self.blocks:
            if block.broken is not None:
                failures.append(block.broken)
                continue
            try:
                choice, source = choose_variant(block.rule, context, predicate)
            except RenderFailed as failure:
                failures.append(PartFailure(f"blocks.{block.name}", failure.reason, failure.message))
                continue
            where = f"blocks.{block.name}." + (
                "default" if choice.index is None else f"variants.{choice.index + 1}"
            )
            chosen[block.name] = (where, source, choice)
        parts: dict[str, str] = {}
        for name in self.spec.parts:
            source = str(self.draft.content.get(name) or "")
            if not source:
                continue
            html = name in HTML_PARTS
            try:
                blocks = self._blocks_for(source, chosen, context, html=html, budget=budget)
                if html and not blocks and self._text_from_html():
                    # no blocks: the text part comes from the HTML *template* (cheaper than converting)
                    both = render_parts(self.engine, {"html": source}, context, snippets=self.snippets)
                    parts["html"], parts["text"] = both["html"], both["text"]
                    continue
                part_context = {**context, "blocks": blocks} if blocks else context
                text = self.engine.render(
                    source, part_context, html=html, snippets=self.snippets, budget=budget
                ).text
            except _BlockFailed as failed:
                failures.append(failed.failure)
                continue
            except RenderFailed as failure:
                why = failure.message.removeprefix(f"{name}: ")  # render_parts names the part too
                failures.append(PartFailure(name, failure.reason, why, failure.line, failure.column))
                continue
            parts[name] = single_line(text) if name in ONE_LINE_PARTS else text
        generated = False
        if self.draft.channel == "email":
            if "html" in parts and self._text_from_html():
                if not parts.get("text", "").strip():
                    parts["text"] = html_to_text(parts["html"])
                generated = True
            if "html" in parts:
                parts["html"] = with_preheader(parts["html"], parts.get("preheader", ""))
        if self.draft.channel == "webhook" and "body" in parts:
            try:
                json.loads(parts["body"])
            except json.JSONDecodeError as err:
                failures.append(
                    PartFailure(
                        "body", "invalid_json", f"not JSON after rendering: {err.msg}", err.lineno, err.colno
                    )
                )
        message = RenderedMessage(
            template_id=self.draft.id,
            template_version=self.draft.version,
            channel=self.draft.channel,
            profile_id=profile.id,
            address=address_of(profile, self.draft.channel),
            parts=parts,
            choices=tuple(choice for _where, _source, choice in chosen.values()),
            text_generated=generated,
            elapsed_ms=(perf_counter() - started) * 1000,
        )
        return RenderOutcome(message, tuple(failures), context)

    def _text_from_html(self) -> bool:
        """Whether the email's text part is generated from its HTML (no text part was written)."""
        return self.draft.channel == "email" and not str(self.draft.content.get("text") or "").strip()

    def _blocks_for(
        self,
        source: str,
        chosen: Mapping[str, tuple[str, str, Choice]],
        context: Mapping[str, Any],
        *,
        html: bool,
        budget: RenderBudget,
    ) -> dict[str, str]:
        rendered: dict[str, str] = {}
        for name in dict.fromkeys(BLOCK_REF.findall(source)):
            if name not in chosen:
                continue
            where, block_source, _choice = chosen[name]
            try:
                text = self.engine.render(
                    block_source, context, html=html, snippets=self.snippets, budget=budget
                ).text
            except RenderFailed as failure:
                raise _BlockFailed(
                    PartFailure(where, failure.reason, failure.message, failure.line, failure.column)
                ) from failure
            # already escaped by its own render: the part must not escape it again
            rendered[name] = Markup(text) if html else text  # noqa: S704
        return rendered


class _BlockFailed(Exception):
    def __init__(self, failure: PartFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure
