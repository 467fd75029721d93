"""Classify an inbound SMS as opt-out, opt-in, help, or an ordinary reply (R13, FCC 2025 revocation rule).

Matching is on whole words after Unicode NFKC folding, case folding and turning punctuation into spaces,
so ``STOP``, ``stop!!``, ``Ｓｔｏｐ``, ``opt-out`` and ``"please stop texting me"`` all opt out, while
``weekend``, ``backend`` or ``stopped by`` do not.

- OPT_OUT: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, OPT OUT (also OPT-OUT) — as the
  whole message, or anywhere in a short phrase of at most ``SHORT_PHRASE_WORDS`` words, or among the first
  two words of a longer one. Erring towards opt-out is deliberate: a missed revocation is a TCPA violation,
  a false one costs a subscriber who can text START.
- OPT_IN: START, UNSTOP, YES, SUBSCRIBE — only as the whole message (``"yes"`` answers many questions,
  so it re-subscribes only when sent alone). Opt-out wins when both appear.
- HELP: HELP or INFO as the whole message.
- REPLY: anything else (stored on the timeline as a reply).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
OPT_IN_WORDS = frozenset({"start", "unstop", "yes", "subscribe"})
HELP_WORDS = frozenset({"help", "info"})
SHORT_PHRASE_WORDS = 8

_NON_WORD = re.compile(r"[\W_]+")


class Keyword(StrEnum):
    """What an inbound SMS asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    REPLY = "reply"


def words(text: str) -> list[str]:
    """Return the lower-case words of ``text`` (NFKC-folded, punctuation and symbols removed)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [w for w in _NON_WORD.split(folded) if w]


def _has_opt_out(tokens: list[str]) -> bool:
    for i, word in enumerate(tokens):
        if word in OPT_OUT_WORDS:
            return True
        if word == "opt" and i + 1 < len(tokens) and tokens[i + 1] == "out":
            return True
    return False


def classify(text: str) -> Keyword:
    """Return the keyword class of an inbound SMS body."""
    tokens = words(text)
    if not tokens:
        return Keyword.REPLY
    if len(tokens) <= SHORT_PHRASE_WORDS:
        if _has_opt_out(tokens):
            return Keyword.OPT_OUT
    elif _has_opt_out(tokens[:2]):
        return Keyword.OPT_OUT
    if len(tokens) == 1 and tokens[0] in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if len(tokens) == 1 and tokens[0] in HELP_WORDS:
        return Keyword.HELP
    return Keyword.REPLY
