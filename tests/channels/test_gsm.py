"""GSM-7 / UCS-2 detection and SMS segment counting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapport.channels.gsm import GSM7_BASIC, GSM7_EXTENSION, count_segments, is_gsm7


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count double
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),  # the € would straddle parts: it moves to part 2
        ("Grüße aus München, Ärger? ¿Qué? £5 @home", "GSM-7", 40, 1),
        ("ç" + "a" * 69, "UCS-2", 70, 1),  # ç is not GSM-7 (only Ç is)
        ("ç" + "a" * 70, "UCS-2", 71, 2),
        ("😀" * 35, "UCS-2", 70, 1),  # emoji outside the BMP take two UTF-16 units
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 66 + "😀", "UCS-2", 68, 1),
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),  # the emoji is not split: 66 | 2+65 | 1
        ("Привет" * 23, "UCS-2", 138, 3),
    ],
)
def test_known_counts(text: str, encoding: str, units: int, segments: int) -> None:
    counted = count_segments(text)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, segments)


def test_every_gsm_character_is_detected() -> None:
    assert is_gsm7("".join(GSM7_BASIC) + "".join(GSM7_EXTENSION))
    assert not is_gsm7("emoji 🎉")
    assert not is_gsm7("curly quotes “x”")


@given(st.text(alphabet=sorted(GSM7_BASIC), max_size=800))
def test_basic_gsm_matches_the_simple_formula(text: str) -> None:
    counted = count_segments(text)
    n = len(text)
    expected = 0 if n == 0 else 1 if n <= 160 else math.ceil(n / 153)
    assert counted.segments == expected
    assert counted.encoding == "GSM-7"


@given(
    st.text(
        alphabet=st.characters(codec="utf-8", min_codepoint=0x400, max_codepoint=0x4FF),
        min_size=1,
        max_size=500,
    )
)
def test_bmp_ucs2_matches_the_simple_formula(text: str) -> None:
    counted = count_segments(text)
    n = len(text)
    assert counted.encoding == "UCS-2"
    assert counted.segments == (1 if n <= 70 else math.ceil(n / 67))
