"""B7: render + MIME-build a 2 KB personalised email with unsubscribe headers, per core, against a bare
python-liquid render of the same template with the same contexts (the same-run reference).

End to end is ``personalize.engine.render_parts`` (sandboxed engine with limits: subject, HTML and the
text part derived from it, as the messaging pipeline renders) and ``channels.mime.build_email`` with
List-Unsubscribe headers. Contexts come from the generated customers (2,000 different ones per run).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.harness import Context, Measurement, Result
from rapport.synth.catalogue import PRODUCTS, STORES
from rapport.synth.generator import SynthSpec, iter_profiles

TITLE = "render + MIME-build a 2 KB personalised email"
TARGET = ">= 5k messages/s per core"
TEMPLATE = (Path(__file__).parent / "templates" / "email.liquid").read_text(encoding="utf-8")
SUBJECT = "{{ profile.first_name | default: 'Hello' }}, the {{ campaign.name | downcase }} is on"
MESSAGES = 2000


def contexts(seed: int, n: int = MESSAGES) -> list[dict[str, Any]]:
    """Return ``n`` render contexts built from generated customers."""
    stores = {s.id: s.as_dict() for s in STORES}
    out = []
    for i, profile in enumerate(iter_profiles(SynthSpec(profiles=n, seed=seed))):
        picks = [p.as_dict() for p in PRODUCTS if p.category == profile["favourite_category"]]
        out.append(
            {
                "profile": profile,
                "store": stores[profile["home_store"]],
                "products": picks,
                "campaign": {"id": "em-bench", "name": "Winter Sale"},
                "links": {
                    "unsubscribe": f"https://rapport.example/u/tok{i:08d}",
                    "preferences": f"https://rapport.example/p/tok{i:08d}",
                },
            }
        )
    return out


def bare_liquid(ctxs: list[dict[str, Any]]) -> float:
    """The reference: python-liquid's default environment rendering the body; return renders/s."""
    from liquid import Environment

    template = Environment(autoescape=True).from_string(TEMPLATE)
    started = time.perf_counter()
    for ctx in ctxs:
        template.render(**ctx)
    return len(ctxs) / (time.perf_counter() - started)


def end_to_end(ctxs: list[dict[str, Any]]) -> tuple[float, int]:
    """Render subject + HTML (+ the derived text part) with ``render_parts``, build the MIME message."""
    from rapport.channels.base import EmailPayload
    from rapport.channels.mime import build_email
    from rapport.personalize.engine import TemplateEngine, render_parts

    engine = TemplateEngine()
    parts = {"subject": SUBJECT, "html": TEMPLATE}
    size = 0
    started = time.perf_counter()
    for i, ctx in enumerate(ctxs):
        rendered = render_parts(engine, parts, ctx)
        payload = EmailPayload(
            subject=rendered["subject"],
            from_address="news@hartleyandfinch.example",
            from_name="Hartley & Finch",
            to_name=f"{ctx['profile']['first_name']} {ctx['profile']['last_name']}",
            html=rendered["html"],
            text=rendered["text"],
            unsubscribe_url=ctx["links"]["unsubscribe"],
            unsubscribe_mailto="unsubscribe@hartleyandfinch.example",
        )
        message = build_email(payload, to=ctx["profile"]["email"], message_id=f"bench-{i}@rapport.example")
        size = len(message)
    return len(ctxs) / (time.perf_counter() - started), size


def _available() -> bool:
    try:
        from rapport.channels import mime  # noqa: F401
        from rapport.personalize import engine  # noqa: F401
    except ImportError:
        return False
    return True


def run(ctx: Context, ids: set[str]) -> list[Result]:
    """Time the reference and (when its modules exist) the end-to-end build, alternating, ctx.runs times."""
    ctxs = contexts(ctx.seed, min(MESSAGES, max(100, ctx.size)))
    ref = Measurement("bare python-liquid render", "renders/s")
    mine = Measurement("Rapport render + MIME", "messages/s")
    available = _available()
    size = 0
    for _ in range(ctx.runs):
        ref.values.append(bare_liquid(ctxs))
        if available:
            rate, size = end_to_end(ctxs)
            mine.values.append(rate)
    if not available:
        return [
            Result("B7", TITLE, TARGET, status="reference only", measurement=ref,
                   note="rapport.personalize / rapport.channels.mime not available yet"),
        ]  # fmt: skip
    note = f"{len(ctxs):,} messages per run, {size:,}-byte MIME message, 1 core"
    return [Result("B7", TITLE, TARGET, measurement=mine, reference=ref, note=note)]
