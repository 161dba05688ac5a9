"""A wire fuzzer against a real server process, with a bystander (issue 7).

Hypothesis mutates valid frames (types, ranges, Unicode, raw bytes, pipelining, partial
lines) and writes them to a real server over TCP. After each example a sentinel `ping`
must come back. The test fails on any `internal` reply, any unreadable reply, a hang, a
bystander failure, a traceback or ERROR line in the server's log, or RSS growth beyond a
bound. `MAILSLOT_FUZZ_EXAMPLES` sets the number of examples (CI runs a short round; see
the README for a long one).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProcess

EXAMPLES = int(os.environ.get("MAILSLOT_FUZZ_EXAMPLES", "300"))
SENTINEL_ID = 4_242_424_242

names = st.sampled_from(["alice", "bob", "Alice", "ALICE", "fuzz", "ｆｕｚｚ", "x" * 33, "", "a b"])
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "y" * 1001, "\u0000", "\ud800"]))
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
)
anything: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=8,
)


def _valid() -> st.SearchStrategy[dict[str, Any]]:
    request_id = st.one_of(st.none(), st.integers(min_value=0, max_value=1000))
    return st.one_of(
        st.fixed_dictionaries({"op": st.just("hello"), "id": request_id, "version": integers}),
        st.fixed_dictionaries(
            {"op": st.just("login"), "id": request_id, "user": names},
            optional={"password": texts, "presence": st.booleans()},
        ),
        st.fixed_dictionaries({"op": st.just("users"), "id": request_id}),
        st.fixed_dictionaries(
            {
                "op": st.just("send"),
                "id": request_id,
                "mode": st.sampled_from(["one", "many", "all", "some"]),
                "to": st.lists(names, max_size=3),
                "text": texts,
            }
        ),
        st.fixed_dictionaries(
            {"op": st.just("check"), "id": request_id},
            optional={"limit": integers, "after": integers},
        ),
        st.fixed_dictionaries(
            {"op": st.just("ack"), "id": request_id, "ids": st.lists(integers, max_size=4)}
        ),
        st.fixed_dictionaries(
            {"op": st.just("passwd"), "id": request_id, "old": texts, "new": texts}
        ),
        st.fixed_dictionaries(
            {"op": st.sampled_from(["ping", "bye", "nope", 7, None]), "id": request_id}
        ),
    )


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One frame: valid, with a field retyped or added, or as bytes cut and corrupted."""
    frame = draw(_valid())
    kind = draw(st.sampled_from(["valid", "retype", "extra", "bytes"]))
    if kind == "retype":
        frame[draw(st.sampled_from(sorted(frame)))] = draw(anything)
    elif kind == "extra":
        frame[draw(st.text(max_size=6))] = draw(anything)
    data = json.dumps(frame, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "bytes" and data:
        where = draw(st.integers(min_value=0, max_value=len(data) - 1))
        junk = draw(
            st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\n", b"{", b'"', b"\xed\xa0\x80"])
        )
        data = data[:where] + junk + data[where + draw(st.integers(0, 2)) :]
    return data + draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"]))


@st.composite
def writes(draw: st.DrawFn) -> list[bytes]:
    """Several frames pipelined, cut into writes at arbitrary points."""
    stream = b"".join(draw(st.lists(frames(), min_size=1, max_size=6)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=3)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if b > a]


class Peer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        assert self.next_frame()["event"] == "welcome"

    def next_frame(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            data = self.sock.recv(65_536)
            if not data:
                raise EOFError
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        value: dict[str, Any] = json.loads(line)  # every reply must be valid JSON
        return value

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    process = ServerProcess(data_dir, "--auth", "none", "--no-limits")
    yield process
    process.stop()


class Bystander:
    """Sends to itself and checks, and must never fail."""

    def __init__(self, port: int) -> None:
        self.peer = Peer(port)
        self.count = 0
        self.request({"op": "login", "user": "bystander", "presence": False})

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        frame["id"] = self.count
        self.peer.sock.sendall(json.dumps(frame).encode() + b"\n")
        while True:
            reply = self.peer.next_frame()
            if reply.get("id") == self.count:
                assert reply["ok"] is True, reply
                return reply

    def round_trip(self) -> None:
        sent = self.request(
            {"op": "send", "mode": "one", "to": ["bystander"], "text": "still here"}
        )
        got = [m["id"] for m in self.request({"op": "check"})["messages"]]
        assert sent["msg"] in got  # with whatever fuzzed 1-to-all sends brought
        self.request({"op": "ack", "ids": got})


def test_fuzzed_frames_get_errors_never_internal_and_bystanders_are_unhurt(
    fuzzed: ServerProcess,
) -> None:
    baseline = fuzzed.rss_kib()
    bystander = Bystander(fuzzed.port)
    state: dict[str, Peer | int] = {"examples": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(writes())
    def one_example(chunks: list[bytes]) -> None:
        peer = state.get("peer")
        if not isinstance(peer, Peer):
            peer = state["peer"] = Peer(fuzzed.port)
        try:
            for chunk in chunks:
                peer.sock.sendall(chunk)
            peer.sock.sendall(b'\n{"op":"ping","id":%d}\n' % SENTINEL_ID)
            while (reply := peer.next_frame()).get("id") != SENTINEL_ID:
                assert reply.get("error") != "internal", reply
        except (EOFError, BrokenPipeError, ConnectionResetError):
            peer.close()  # the server hung up (bye, too many malformed): a clean end
            del state["peer"]
        count = state["examples"]
        assert isinstance(count, int)
        state["examples"] = count + 1
        if count % 25 == 0:
            bystander.round_trip()

    one_example()
    bystander.round_trip()
    log = fuzzed.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert fuzzed.rss_kib() < baseline + 100 * 1024
