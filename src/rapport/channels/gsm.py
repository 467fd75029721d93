"""SMS encoding and segment counting: GSM-7 (3GPP TS 23.038) or UCS-2, as carriers bill them.

GSM-7 fits 160 septets in one SMS, 153 per part when concatenated (the user-data header takes 7); the
extension characters ``^ { } \\ [ ~ ] | €`` and form feed take two septets (escape + char) and are never
split across parts. Any other character switches the whole message to UCS-2: 70 UTF-16 code units in
one SMS, 67 per part; an emoji outside the BMP takes two units and is never split either.

Example::

    >>> count_segments("Hello {name}").encoding
    'GSM-7'
    >>> count_segments("€" * 81).segments   # 162 septets -> two parts
    2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a text will travel: encoding, length in septets/UTF-16 units, parts, and room left."""

    encoding: Encoding
    units: int
    segments: int
    per_segment: int
    remaining: int


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` exists in the GSM-7 alphabet (basic or extension table)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _widths(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count_segments(text: str) -> SegmentCount:
    """Return the encoding and number of SMS parts ``text`` needs (0 parts for an empty text)."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    widths = _widths(text, encoding)
    units = sum(widths)
    if units == 0:
        return SegmentCount(encoding, 0, 0, single, single)
    if units <= single:
        return SegmentCount(encoding, units, 1, single, single - units)
    segments, used = 1, 0
    for width in widths:
        if used + width > multi:  # a character never straddles two parts
            segments += 1
            used = 0
        used += width
    return SegmentCount(encoding, units, segments, multi, multi - used)
