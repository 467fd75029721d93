"""Builds/s of a 2 KB personalised email: our MIME builder vs the stdlib ``EmailMessage`` path.

Run: ``.venv/bin/python -m tests.channels.bench_mime`` (median of 5 runs; not part of the test suite).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from typing import Any

from rapport.channels.base import EmailPayload
from rapport.channels.mime import build_email

TEXT = "\n".join(
    f"Line {n}: hello {{name}}, this week's offers were picked for you at our store." for n in range(13)
)
HTML = "\n".join(
    f'<tr><td style="padding:4px">Offer {n} for {{name}} &mdash; <a href="https://shop.example/o/{n}">see it</a></td></tr>'
    for n in range(9)
)


def ours(i: int) -> bytes:
    """Build one personalised message with our builder."""
    name = f"Ada{i}"
    payload = EmailPayload(
        subject=f"{name}, {i} offers for you 🎉",
        from_address="news@shop.example",
        from_name="Shop",
        to_name=f"{name} Lovelace",
        text=TEXT.replace("{name}", name),
        html=HTML.replace("{name}", name),
        unsubscribe_url=f"https://shop.example/u/TOKEN{i}",
    )
    return build_email(payload, to=f"ada{i}@example.com", message_id=f"m-{i}")


def stdlib(i: int) -> bytes:
    """Build the same message with ``EmailMessage``."""
    name = f"Ada{i}"
    msg = EmailMessage()
    msg["Subject"] = f"{name}, {i} offers for you 🎉"
    msg["From"] = "Shop <news@shop.example>"
    msg["To"] = f"{name} Lovelace <ada{i}@example.com>"
    msg["List-Unsubscribe"] = f"<https://shop.example/u/TOKEN{i}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(TEXT.replace("{name}", name))
    msg.add_alternative(HTML.replace("{name}", name), subtype="html")
    return msg.as_bytes(policy=policy.SMTP)


LIQUID_TEXT = TEXT.replace("{name}", "{{ first_name }}")
LIQUID_HTML = HTML.replace("{name}", "{{ first_name | escape }}")


def rendered(i: int) -> bytes:
    """Render the text and HTML with python-liquid, then build: the B7 end-to-end path."""
    from liquid import Template

    text_t, html_t, subject_t = _templates(Template)
    name = f"Ada{i}"
    payload = EmailPayload(
        subject=subject_t.render(first_name=name, n=i),
        from_address="news@shop.example",
        from_name="Shop",
        to_name=f"{name} Lovelace",
        text=text_t.render(first_name=name),
        html=html_t.render(first_name=name),
        unsubscribe_url=f"https://shop.example/u/TOKEN{i}",
    )
    return build_email(payload, to=f"ada{i}@example.com", message_id=f"m-{i}")


def render_only(i: int) -> bytes:
    """Render the same three templates without building (the B7 reference)."""
    from liquid import Template

    text_t, html_t, subject_t = _templates(Template)
    name = f"Ada{i}"
    return (
        subject_t.render(first_name=name, n=i)
        + text_t.render(first_name=name)
        + html_t.render(first_name=name)
    ).encode()


_cache: dict[str, tuple[Any, Any, Any]] = {}


def _templates(template: Any) -> tuple[Any, Any, Any]:
    if "t" not in _cache:
        _cache["t"] = (
            template(LIQUID_TEXT),
            template(LIQUID_HTML),
            template("{{ first_name }}, {{ n }} offers for you 🎉"),
        )
    return _cache["t"]


def rate(build: Callable[[int], bytes], n: int) -> float:
    """Return builds per second over ``n`` builds."""
    start = time.perf_counter()
    for i in range(n):
        build(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    """Print the median builds/s of both builders and their ratio."""
    print(f"message size: {len(ours(1))} bytes")
    mine = statistics.median(rate(ours, 20_000) for _ in range(5))
    ref = statistics.median(rate(stdlib, 1_000) for _ in range(5))
    print(f"rapport.channels.mime: {mine:,.0f} builds/s")
    print(f"stdlib EmailMessage:   {ref:,.0f} builds/s")
    print(f"ratio: {mine / ref:.1f}x")
    render = statistics.median(rate(render_only, 5_000) for _ in range(5))
    end_to_end = statistics.median(rate(rendered, 5_000) for _ in range(5))
    print(f"python-liquid render only:         {render:,.0f}/s")
    print(
        f"render + build (B7 end to end):    {end_to_end:,.0f}/s ({end_to_end / render:.2f}x of render only)"
    )


if __name__ == "__main__":
    main()
