"""What each channel's template is made of: its Liquid parts, which are required, how each is rendered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rapport.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class ChannelParts:
    """The parts of one channel's template, in editor order; ``required`` must not be blank."""

    channel: str
    parts: tuple[str, ...]
    required: tuple[str, ...]
    #: at least one of these must be written (an email needs HTML or text)
    one_of: tuple[str, ...] = ()
    #: parts whose source is one line of Liquid in the editor (the others are text areas)
    single_line: tuple[str, ...] = ()


CHANNELS: Mapping[str, ChannelParts] = {
    "email": ChannelParts(
        "email",
        ("subject", "preheader", "html", "text"),
        required=("subject",),
        one_of=("html", "text"),
        single_line=("subject", "preheader"),
    ),
    "sms": ChannelParts("sms", ("body",), required=("body",)),
    "push": ChannelParts(
        "push", ("title", "body", "url", "icon"), required=("title",), single_line=("title", "url", "icon")
    ),
    "inapp": ChannelParts(
        "inapp", ("title", "body", "url", "image"), required=("title",), single_line=("title", "url", "image")
    ),
    "webhook": ChannelParts("webhook", ("url", "body"), required=("url", "body"), single_line=("url",)),
}

#: Parts rendered with HTML escaping.
HTML_PARTS = frozenset({"html"})
#: Parts whose rendered value must be one line (header-safe, R23).
ONE_LINE_PARTS = frozenset({"subject", "preheader", "title", "url", "icon", "image"})


def spec_of(channel: str) -> ChannelParts:
    """Return the parts of ``channel`` or raise ValidationFailed naming the known channels."""
    try:
        return CHANNELS[channel]
    except KeyError:
        raise ValidationFailed(
            f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}", code="unknown_channel"
        ) from None


def clean_content(channel: str, content: Mapping[str, object]) -> dict[str, str]:
    """Keep the channel's parts (as strings, empty when absent); an unknown part is refused."""
    spec = spec_of(channel)
    unknown = sorted(set(content) - set(spec.parts))
    if unknown:
        raise ValidationFailed(
            f"{channel} templates have no part {', '.join(map(repr, unknown))}; "
            f"their parts are {', '.join(spec.parts)}",
            code="unknown_part",
            details={"parts": list(spec.parts), "unknown": unknown},
        )
    cleaned: dict[str, str] = {}
    for name in spec.parts:
        value = content.get(name)
        cleaned[name] = "" if value is None else str(value)
    return cleaned
