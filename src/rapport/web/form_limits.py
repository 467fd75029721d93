"""Length limits of the UI's forms, checked by the page that shows the form.

A limit declared on the form parameter (``Form(max_length=…)``) refuses the whole request before the page's
handler runs: the marketer got a generic error page and lost what they had written. A page checks its
fields with :func:`too_long` instead and shows the form again, input kept, with the problem in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: (form field, what the page calls it, the longest allowed length in characters)
Limit = tuple[str, str, int]


def too_long(sent: Mapping[str, str], limits: Iterable[Limit]) -> str:
    """Return the problem with the first over-long field of ``sent``, or ''."""
    for field, label, limit in limits:
        length = len(sent.get(field) or "")
        if length > limit:
            return f"{label} is {length:,} characters long: at most {limit:,} are allowed."
    return ""
