"""SMS keyword classification (R13): every reasonable opt-out is honoured, ordinary replies are not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.channels.sms_keywords import Keyword, classify

OPT_OUT = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPT OUT",
    "OPTOUT",
    "OPT-OUT",
]
PUNCTUATION = ["", "!", "!!", ".", "...", "?", " ", "  ", "\n", "*", '"', "'", "-", ",", ":)", " 🙏", "!!!\n"]
PHRASES = [
    "{k}",
    "please {k}",
    "{k} please",
    "{k} texting me",
    "{k} sending me these",
    "pls {k} now",
    "i said {k}",
    "{k} {k}",
    "{k}, thanks",
    "ok {k}",
]


def case_variants(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.upper() if up else c.lower() for c, up in zip(word, flips, strict=True))
    )


@st.composite
def opt_out_messages(draw: st.DrawFn) -> str:
    keyword = draw(st.sampled_from(OPT_OUT).flatmap(case_variants))
    phrase = draw(st.sampled_from(PHRASES)).replace("{k}", keyword)
    before = draw(st.sampled_from(PUNCTUATION))
    after = draw(st.sampled_from(PUNCTUATION))
    return f"{before}{phrase}{after}"


@settings(max_examples=200)
@given(opt_out_messages())
def test_generated_opt_out_variants_all_opt_out(text: str) -> None:
    assert classify(text) is Keyword.OPT_OUT, text


@pytest.mark.parametrize(
    "text",
    ["Stop", "sToP!!", "STOP.", "please stop", "stop texting me", "Ｓｔｏｐ", "«stop»", "Opt out!", "opt-out",
     "UNSUBSCRIBE me", "cancel", "End.", "quit!", "Revoke", "STOP sending me messages please thank you",
     "Please STOP messaging me, I never signed up for any of this"],
)  # fmt: skip
def test_known_opt_outs(text: str) -> None:
    assert classify(text) is Keyword.OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["See you at the weekend", "backend is down", "I stopped by the store yesterday", "unstoppable deals",
     "Quite good", "Endless summer", "cancellation policy?", "What a legendary offer, I will come to the shop on "
     "Saturday and maybe bring friends along", "optimal", "Thanks! Love the new collection", "", "   ", "🎉"],
)  # fmt: skip
def test_ordinary_messages_are_replies(text: str) -> None:
    assert classify(text) is Keyword.REPLY


@pytest.mark.parametrize("text", ["START", "start", "Unstop", "YES", "yes!", "Subscribe"])
def test_opt_in(text: str) -> None:
    assert classify(text) is Keyword.OPT_IN


@pytest.mark.parametrize("text", ["HELP", "help?", "Info", "INFO."])
def test_help(text: str) -> None:
    assert classify(text) is Keyword.HELP


def test_opt_out_wins_and_yes_only_alone() -> None:
    assert classify("start stop") is Keyword.OPT_OUT
    assert classify("yes I will come") is Keyword.REPLY
    assert classify("help me stop these") is Keyword.OPT_OUT


LOOKALIKES = [
    "weekend",
    "backend",
    "stopped",
    "stopping",
    "ending",
    "quite",
    "cancellation",
    "optimal",
    "endless",
    "unstoppable",
    "legend",
    "quitting",
    "options",
    "outlet",
    "blend",
    "friend",
    "bestop",
]
FILLER = ["see", "you", "at", "the", "shop", "great", "deal", "thanks", "when", "is", "sale", "my", "order"]


@given(st.lists(st.sampled_from(LOOKALIKES + FILLER), min_size=1, max_size=12), st.sampled_from(PUNCTUATION))
def test_sentences_with_lookalike_words_are_not_opt_outs(words: list[str], end: str) -> None:
    assert classify(" ".join(words) + end) is not Keyword.OPT_OUT
