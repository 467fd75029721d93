"""Builds/s of a 2 KB personalised email: our MIME builder vs the stdlib ``EmailMessage`` path.

Run: ``.venv/bin/python -m tests.channels.bench_mime`` (median of 5 runs; not part of the test suite).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage

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


if __name__ == "__main__":
    main()
