"""Dot-stuffing (RFC 5321 4.5.2) without a regex gives what the multiline regex gave."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from rapport.channels.email import dot_stuff

_DOT_LINE = re.compile(rb"^\.", re.MULTILINE)


@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"a", b" ", b"\r", b"=2E"]), max_size=40))
def test_dot_stuff_doubles_every_dot_that_starts_a_line(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert dot_stuff(data) == _DOT_LINE.sub(b"..", data)


def test_dot_stuff_examples() -> None:
    assert dot_stuff(b".\r\n.x\r\nno.dot\r\n..\r\n") == b"..\r\n..x\r\nno.dot\r\n...\r\n"
    assert dot_stuff(b"plain\r\n") == b"plain\r\n"
