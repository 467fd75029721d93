"""The MIME builder, checked by parsing its output with the stdlib parser (policy=default)."""

from __future__ import annotations

import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.channels.base import EmailPayload
from rapport.channels.mime import (
    DkimSigner,
    MimeError,
    build_email,
    encode_body,
    message_id_header,
    neutralise,
)

ONCE = ("Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type")


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def payload(**changes: object) -> EmailPayload:
    fields: dict[str, object] = {
        "subject": "Hello",
        "from_address": "news@shop.example",
        "text": "Hi\n",
        "html": "<p>Hi</p>\n",
    }
    fields.update(changes)
    return EmailPayload(**fields)  # type: ignore[arg-type]


def assert_wire_format(raw: bytes) -> None:
    head, sep, _ = raw.partition(b"\r\n\r\n")
    assert sep, "header block must end with an empty CRLF line"
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
    for line in head.split(b"\r\n"):
        assert line.isascii()
        assert line.strip(b" \t"), "whitespace-only header line"


def test_multipart_alternative_round_trips_through_the_stdlib_parser() -> None:
    subject = "Grüße, Zoë — 50 % off 🎉🎉 on everything you looked at this week, only until Sunday night"
    text = "Hallo Zoë,\n\nprice = 10 €\n.\ntrailing space \nend"
    html = "<p>Hallo <b>Zoë</b> — ünïcode</p>\n<p>" + "x" * 300 + "</p>\n"
    raw = build_email(
        payload(
            subject=subject,
            from_name="Shop, Inc. 🛍",
            to_name="Zoë O'Brien",
            reply_to="help@shop.example",
            text=text,
            html=html,
            unsubscribe_url="https://shop.example/u/TOKEN",
            unsubscribe_mailto="unsub@shop.example?subject=TOKEN",
            headers=(("X-Campaign-Id", "cmp-1"),),
        ),
        to="zoe@example.com",
        message_id="cmp1-p7-email",
        date=1_800_000_000,
    )
    assert_wire_format(raw)
    message = parse(raw)
    assert message.defects == []
    for name in (*ONCE, "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post", "X-Campaign-Id"):
        assert len(message.get_all(name) or []) == 1, name
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Shop, Inc. 🛍"
    assert message["From"].addresses[0].addr_spec == "news@shop.example"
    assert message["To"].addresses[0].display_name == "Zoë O'Brien"
    assert message["To"].addresses[0].addr_spec == "zoe@example.com"
    assert message["Message-ID"] == "<cmp1-p7-email@shop.example>"
    assert message["Date"].datetime.timestamp() == 1_800_000_000
    assert message["MIME-Version"] == "1.0"
    assert (
        message["List-Unsubscribe"]
        == "<https://shop.example/u/TOKEN>, <mailto:unsub@shop.example?subject=TOKEN>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_payload(decode=True) == text.replace("\n", "\r\n").encode()
    assert parts[1].get_payload(decode=True) == html.replace("\n", "\r\n").encode()
    assert parts[0].get_content() == text.replace("\n", "\r\n")


def test_single_part_messages() -> None:
    text_only = parse(build_email(payload(html=None), to="a@example.com", message_id="m1"))
    html_only = parse(build_email(payload(text=None), to="a@example.com", message_id="m2"))
    assert text_only.get_content_type() == "text/plain"
    assert html_only.get_content_type() == "text/html"
    assert html_only.get_payload(decode=True) == b"<p>Hi</p>\r\n"
    no_newline = parse(
        build_email(payload(text="no newline at the end", html=None), to="a@example.com", message_id="m")
    )
    assert no_newline.get_payload(decode=True) == b"no newline at the end"
    with pytest.raises(MimeError):
        build_email(payload(text=None, html=None), to="a@example.com", message_id="m3")


def test_service_mail_has_no_unsubscribe_headers() -> None:
    message = parse(build_email(payload(), to="a@example.com", message_id="m1"))
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None


def test_body_encoding_choice() -> None:
    assert encode_body("plain ascii\nlines\n")[0] == "7bit"
    assert encode_body("a line with trailing space \n")[0] == "quoted-printable"
    assert encode_body("x" * 1200)[0] == "quoted-printable"
    assert encode_body("mostly latin with é\n" * 5)[0] == "quoted-printable"
    assert encode_body("Привет, как дела? " * 10)[0] == "base64"
    for sample in ("x" * 1200, "Привет " * 40, "tab\tend\t\n.\n"):
        _cte, body = encode_body(sample)
        for line in body.split(b"\r\n"):
            assert len(line) <= 76


@pytest.mark.parametrize(
    "evil", ["x\r\nBcc: evil@x", "x\nBcc: evil@x", "x\rBcc: evil@x", "x\x00y", "x\u2028Bcc: e@x"]
)
def test_control_characters_never_start_a_header(evil: str) -> None:
    raw = build_email(
        payload(subject=f"Hi {evil}", from_name=evil, to_name=evil, headers=(("X-Note", evil),)),
        to="ada@example.com",
        message_id="m1",
    )
    assert_wire_format(raw)
    message = parse(raw)
    assert message.get_all("Bcc") is None
    assert message["Subject"] == f"Hi {neutralise(evil)}"
    assert message["To"].addresses[0].addr_spec == "ada@example.com"
    assert len(message["To"].addresses) == 1
    assert message["X-Note"] == neutralise(evil)


@pytest.mark.parametrize(
    "changes",
    [
        {"from_address": "news@shop.example\r\nBcc: evil@x"},
        {"reply_to": "a@b.example>, evil@x"},
        {"unsubscribe_url": "https://shop.example/u/T>\r\nBcc: evil@x"},
        {"unsubscribe_url": "javascript:alert(1)"},
        {"headers": (("Bcc", "evil@x"),)},
        {"headers": (("Subject", "second subject"),)},
        {"headers": (("X-Bad\r\nBcc", "evil@x"),)},
    ],
)
def test_unsafe_addresses_urls_and_header_names_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(MimeError):
        build_email(payload(**changes), to="ada@example.com", message_id="m1")


@pytest.mark.parametrize(
    "to", ["ada@example.com\r\nBcc: evil@x", "a b@example.com", "<a@example.com>", "a@", "@x"]
)
def test_invalid_recipients_are_refused(to: str) -> None:
    with pytest.raises(MimeError):
        build_email(payload(), to=to, message_id="m1")


def test_idn_domains_are_encoded() -> None:
    message = parse(build_email(payload(), to="zoe@bücher.example", message_id="m1"))
    assert message["To"].addresses[0].addr_spec == "zoe@xn--bcher-kva.example"


def test_message_id_is_stable_and_safe() -> None:
    assert message_id_header("cmp1-p7-email", "shop.example") == "<cmp1-p7-email@shop.example>"
    odd = message_id_header("weird id <with> spaces\r\n", "shop.example")
    assert odd == message_id_header("weird id <with> spaces\r\n", "shop.example")
    assert re.fullmatch(r"<[0-9a-f]{40}@shop\.example>", odd)


def test_long_ascii_subject_is_folded_and_unfolds_exactly() -> None:
    subject = " ".join(f"word{n}" for n in range(60)) + "  double  spaces kept"
    raw = build_email(payload(subject=subject), to="a@example.com", message_id="m1")
    head = raw.partition(b"\r\n\r\n")[0]
    subject_lines = head.split(b"Subject:")[1].split(b"\r\nMessage-ID")[0].split(b"\r\n")
    assert len(subject_lines) > 3
    assert all(len(line) <= 78 for line in subject_lines)
    assert parse(raw)["Subject"] == subject


header_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=0,
    max_size=120,
)
body_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300)


@settings(max_examples=80, deadline=None)
@given(subject=header_text, name=header_text, text=body_text, html=body_text)
def test_any_personalised_values_round_trip(subject: str, name: str, text: str, html: str) -> None:
    raw = build_email(
        payload(subject=subject, to_name=name, text=text, html=html, unsubscribe_url="https://s.example/u/T"),
        to="ada@example.com",
        message_id="m1",
    )
    assert_wire_format(raw)
    message = parse(raw)
    for header in ONCE:
        assert len(message.get_all(header) or []) == 1, header
    assert message.get_all("Bcc") is None
    assert message["Subject"] == neutralise(subject)
    to = message["To"].addresses
    assert len(to) == 1 and to[0].addr_spec == "ada@example.com"
    expected_name = " ".join(neutralise(name).split())
    raw_to = raw.split(b"\r\nTo: ")[1].split(b"\r\nSubject:")[0].decode("ascii").replace("\r\n", "")
    if raw_to.startswith("=?"):
        # RFC 2047 joins adjacent encoded-words without the blank between them (the legacy decoder
        # does); the stdlib phrase parser inserts a space between them, a CPython quirk
        phrase = raw_to.rsplit(" <", 1)[0]
        assert str(make_header(decode_header(phrase))) == expected_name
        assert to[0].display_name.replace(" ", "") == expected_name.replace(" ", "")
    else:
        assert to[0].display_name == expected_name
    canonical = [
        s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
        for s in (text, html)
    ]
    parts = list(message.iter_parts())
    assert [p.get_payload(decode=True) for p in parts] == canonical
    single = parse(
        build_email(payload(subject=subject, text=text, html=None), to="a@example.com", message_id="m")
    )
    assert single.get_payload(decode=True) == canonical[0]


def _rsa_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers() -> None:
    import base64

    private, public = _rsa_key()
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"rp1._domainkey.shop.example."
        return record

    signer = DkimSigner(selector="rp1", domain="shop.example", private_key_pem=private)
    raw = build_email(
        payload(subject="Grüße 🎉", to_name="Zoë", unsubscribe_url="https://shop.example/u/T"),
        to="zoe@example.com",
        message_id="m1",
        dkim=signer,
    )
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns)
    signature = parse(raw)["DKIM-Signature"]
    signed = {h.strip().lower() for h in re.search(r"h=([^;]+)", str(signature)).group(1).split(":")}  # type: ignore[union-attr]
    wanted = {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"}
    assert wanted <= signed
    tampered = raw.replace(b"https://shop.example/u/T", b"https://evil.example/u/T")
    assert not dkim.verify(tampered, dnsfunc=dns)


_QP_PIECES = st.sampled_from(
    [*"ab= .\t\x00\x7f", "é", "€", "\n", ".\n", " \n", "\t\n", "=\n", "x" * 40, "y" * 75, "z" * 77]
)


@settings(max_examples=400)
@given(text=st.lists(_QP_PIECES, max_size=40).map("".join), cold=st.booleans())
def test_quoted_printable_line_by_line_is_the_whole_encoding(text: str, cold: bool) -> None:
    from binascii import a2b_qp

    from rapport.channels import mime

    data = text.replace("\n", "\r\n").encode("utf-8")
    if cold:
        mime._QP_LINES.clear()
    first = mime.quoted_printable(data)
    assert first == mime.quoted_printable_whole(data)
    assert mime.quoted_printable(data) == first  # now from the cache of encoded lines
    assert a2b_qp(first) == data


def test_the_encoded_line_cache_stays_bounded() -> None:
    from rapport.channels import mime

    for i in range(mime._QP_LINES_MAX + 10):
        mime.quoted_printable(f"personal line {i} = é".encode())
    assert len(mime._QP_LINES) <= mime._QP_LINES_MAX
