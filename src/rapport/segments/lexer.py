"""The tokenizer of the segment language: words, strings, numbers, dates and operators with positions."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from rapport.segments.ast import MAX_NUMBER
from rapport.segments.errors import SegmentError

TokenKind = Literal["word", "field", "string", "number", "date", "op", "punct", "end"]

_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "`": "`", "n": "\n", "t": "\t", "r": "\r"}
_SPACE = re.compile(r"(?:\s+|#[^\n]*)+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w.-])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\d.])")
_WORD = re.compile(r"[^\W\d]\w*(?:\.\w+)*")
_OPS = re.compile(r">=|<=|!=|==|=|>|<")
_PUNCT = "(),%"
_MAX_DIGITS = len(str(int(MAX_NUMBER)))  # an integer with more digits is beyond every double


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, source text, decoded value and 1-based position."""

    kind: TokenKind
    text: str
    value: object
    line: int
    column: int

    def is_word(self, *words: str) -> bool:
        """Tell whether this is a bare word equal (ignoring case) to one of ``words``."""
        return self.kind == "word" and self.text.lower() in words

    def describe(self) -> str:
        """Name the token for an error message."""
        return "the end of the segment" if self.kind == "end" else repr(self.text)


class _Positions:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def _quoted(text: str, start: int, positions: _Positions) -> tuple[str, int]:
    """Decode the quoted string or backticked field starting at ``start``; return it and the end offset."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            line, column = positions.at(i)
            raise SegmentError(
                "unknown escape in a string", line, column, ['\\"', "\\\\", "\\n", "\\t", "\\uXXXX"]
            )
        out.append(char)
        i += 1
    line, column = positions.at(start)
    raise SegmentError("this string is never closed", line, column, [f"a closing {quote}"])


def _number(raw: str) -> int | float | None:
    """Decode a number literal; None when it is beyond the range of a double (so no condition can use it)."""
    if any(c in raw for c in ".eE"):
        number = float(raw)
        return number if math.isfinite(number) else None
    digits = raw.lstrip("-").lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:  # checked before int(), which refuses text of over 4,300 digits
        return None
    whole = -int(digits) if raw.startswith("-") else int(digits)
    return whole if abs(whole) <= MAX_NUMBER else None


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token; raise ``SegmentError`` on a bad character."""
    positions = _Positions(text)
    tokens: list[Token] = []
    i = 0
    while True:
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
        line, column = positions.at(i)
        if i >= len(text):
            tokens.append(Token("end", "", None, line, column))
            return tokens
        char = text[i]
        if char in "\"'`":
            value, end = _quoted(text, i, positions)
            tokens.append(Token("field" if char == "`" else "string", text[i:end], value, line, column))
            i = end
            continue
        if match := _DATE.match(text, i):
            try:
                day = date.fromisoformat(match.group())
            except ValueError:
                raise SegmentError(
                    f"{match.group()} is not a calendar date", line, column, ["a date YYYY-MM-DD"]
                ) from None
            tokens.append(Token("date", match.group(), day, line, column))
        elif match := _NUMBER.match(text, i):
            raw = match.group()
            number = _number(raw)
            if number is None:
                shown = raw if len(raw) <= 24 else f"{raw[:12]}… ({len(raw):,} characters)"
                raise SegmentError(
                    f"{shown} is too large: numbers must lie between -{MAX_NUMBER!r} and {MAX_NUMBER!r}",
                    line,
                    column,
                    ["a finite number"],
                )
            tokens.append(Token("number", raw, number, line, column))
        elif match := _WORD.match(text, i):
            tokens.append(Token("word", match.group(), match.group(), line, column))
        elif match := _OPS.match(text, i):
            op = "=" if match.group() == "==" else match.group()
            tokens.append(Token("op", match.group(), op, line, column))
        elif char in _PUNCT:
            tokens.append(Token("punct", char, char, line, column))
            i += 1
            continue
        else:
            raise SegmentError(f"unexpected character {char!r}", line, column, ["a condition"])
        i = match.end()


# Words that start a condition (or join them) and so cannot start a field name: the printer puts a field
# named like one of them in backticks. Every other keyword is only recognised where the grammar expects it.
START_WORDS = frozenset(
    {"and", "or", "not", "did", "in", "first", "last", "subscribed", "unsubscribed", "within", "random"}
    | {"true", "false"}
)
_ENGAGEMENT = re.compile(
    r"(email|sms|push|inapp|webhook|message)\.(sent|delivered|opened|clicked|bounced|unsubscribed)", re.I
)


def engagement_parts(word: str) -> tuple[str, str] | None:
    """Split ``email.opened`` into (channel, action); ``message`` stands for any channel."""
    match = _ENGAGEMENT.fullmatch(word)
    return (match.group(1).lower(), match.group(2).lower()) if match else None


def is_plain_word(text: str) -> bool:
    """Tell whether ``text`` lexes as one bare word."""
    return _WORD.fullmatch(text) is not None
