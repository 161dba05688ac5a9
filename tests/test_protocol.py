"""The pure protocol layer: names, framing, request decoding (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailslot.client.address import format_address, parse_address
from mailslot.protocol import (
    Ack,
    BadFrame,
    ErrorCode,
    FrameTooLarge,
    InvalidName,
    LineSplitter,
    Login,
    Send,
    decode_request,
    display_name,
    encode,
    format_time,
    name_key,
    parse_time,
)


def test_names_are_one_user_across_case_and_width() -> None:
    assert name_key("Alice") == name_key("alice") == name_key("ＡＬＩＣＥ") == name_key(" alice ")
    assert display_name(" Alice ") == "Alice"
    assert name_key("Straße") == name_key("STRASSE")
    assert display_name("Ünïcødé") == "Ünïcødé"


@pytest.mark.parametrize("bad", ["", "   ", "a b", "x" * 33, "bob!", "a/b", "\x00", "😀"])
def test_invalid_names_are_refused_with_a_sentence(bad: str) -> None:
    with pytest.raises(InvalidName) as error:
        name_key(bad)
    assert str(error.value)


def test_requests_decode_to_typed_frames() -> None:
    assert decode_request(b'{"op":"login","id":1,"user":"a","password":"p"}') == Login(
        user="a", password="p", id=1
    )
    send = decode_request(b'{"op":"send","id":2,"mode":"many","to":["a","b"],"text":"hi"}')
    assert send == Send(mode="many", text="hi", to=["a", "b"], id=2)
    assert decode_request(b'{"op":"ack","ids":[1,2]}') == Ack(ids=[1, 2])


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        (b"garbage", ErrorCode.MALFORMED, None),
        (b"\xff\xfe\xfd", ErrorCode.MALFORMED, None),
        (b"[1,2,3]", ErrorCode.MALFORMED, None),
        (b'{"op":"nope","id":7}', ErrorCode.UNKNOWN_OP, 7),
        (b'{"op":"send","id":8,"mode":"one","to":"bob","text":"x"}', ErrorCode.MALFORMED, 8),
        (b'{"op":"send","id":9,"mode":"sideways","to":[],"text":"x"}', ErrorCode.MALFORMED, 9),
        (b'{"op":"ack","id":3,"ids":["x"]}', ErrorCode.MALFORMED, 3),
        (b'{"op":"ping","deep":' + b"[" * 50_000 + b"]" * 50_000 + b"}", ErrorCode.MALFORMED, None),
    ],
)
def test_bad_frames_get_an_error_code(line: bytes, code: ErrorCode, request_id: int | None) -> None:
    result = decode_request(line)
    assert isinstance(result, BadFrame)
    assert result.code == code
    assert result.id == request_id
    assert result.message


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2_000))
def test_any_bytes_decode_to_a_request_or_a_bad_frame(data: bytes) -> None:
    decode_request(data)  # must not raise


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["op", "id", "user", "to", "text", "mode", "ids", "password", "x"]),
        json_values | st.sampled_from(["send", "login", "ack", "check", "one", "all"]),
    )
)
def test_any_json_object_decodes_to_a_request_or_a_bad_frame(frame: dict[str, object]) -> None:
    result = decode_request(encode(frame).rstrip(b"\n"))
    if isinstance(result, BadFrame):
        assert result.message


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=50).filter(lambda b: b"\n" not in b), max_size=20),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10),
)
def test_splitter_yields_the_same_frames_however_the_stream_is_cut(
    lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    splitter = LineSplitter(max_frame=1000)
    frames: list[bytes] = []
    position = 0
    for size in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        frames += splitter.feed(stream[position : position + size])
        position += size
    frames += splitter.feed(stream[position:])
    expected = [line.removesuffix(b"\r") for line in lines if line.removesuffix(b"\r").strip()]
    assert frames == expected


def test_splitter_refuses_a_long_line_even_before_its_end() -> None:
    splitter = LineSplitter(max_frame=100)
    with pytest.raises(FrameTooLarge):
        splitter.feed(b"x" * 150)
    with pytest.raises(FrameTooLarge):
        LineSplitter(max_frame=100).feed(b"y" * 120 + b"\n")
    assert LineSplitter(max_frame=100).feed(b"ok\r\n\n  \nnext\n") == [b"ok", b"next"]


def test_times_are_utc_iso_8601() -> None:
    text = format_time(1_764_000_000_123_456)
    assert text == "2025-11-24T16:00:00.123456Z"
    assert parse_time(text).utcoffset() is not None
    assert parse_time(text).timestamp() == pytest.approx(1_764_000_000.123456)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.org", ("example.org", 7777)),
        (" 127.0.0.1:8000 ", ("127.0.0.1", 8000)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 7777)),
    ],
)
def test_server_addresses_as_people_type_them(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
    assert parse_address(format_address(*expected)) == expected


@pytest.mark.parametrize("bad", ["", ":7777", "host:port", "host:70000", "[::1", "[::1]x"])
def test_bad_server_addresses_get_a_sentence(bad: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_address(bad)
    assert str(error.value)
