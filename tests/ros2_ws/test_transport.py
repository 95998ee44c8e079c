import time

import pytest
import zmq

from ros2_ws.link.transport import RELAY_TAG, Receiver, Sender


def collect(rx, n, timeout=5.0):
    got = []
    t_end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < t_end:
        got += rx.recv(timeout_ms=50)
    return got


def send_until(tx, rx, payload=b"hello", timeout=5.0):
    """IMMEDIATE drops while the CURVE handshake runs: keep sending until something arrives."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        tx.send([payload])
        got = rx.recv(timeout_ms=50)
        if got:
            return got
    return []


@pytest.fixture
def rsu(keyset, endpoint):
    rx = Receiver(endpoint(), keyset / "rsu.key_secret", keyset / "allowed")
    yield rx
    rx.close()


def test_allowed_vehicle_is_identified(keyset, rsu):
    tx = Sender(rsu.endpoint, keyset / "vehicle_2.key_secret", keyset / "rsu.key")
    try:
        got = send_until(tx, rsu)
        assert got and got[0].data == b"hello"
        assert got[0].peer.name == "vehicle_2" and got[0].expect_vehicle == 2 and got[0].via is None
    finally:
        tx.close()


def test_unknown_key_never_gets_through(keyset, rsu):
    tx = Sender(rsu.endpoint, keyset / "outside" / "intruder.key_secret", keyset / "rsu.key")
    try:
        assert send_until(tx, rsu, timeout=1.5) == []
        assert tx.stats["dropped_unavailable"] > 0  # never blocks: dropped and counted instead
    finally:
        tx.close()


def test_relay_envelope_checked_against_allow_list(keyset, rsu):
    from ros2_ws.link.keys import load_public

    tx = Sender(rsu.endpoint, keyset / "link.key_secret", keyset / "rsu.key")
    v1 = load_public(keyset / "vehicle_1.key")
    bad = load_public(keyset / "outside" / "intruder.key")
    try:
        t_end = time.monotonic() + 5
        got = []
        while not got and time.monotonic() < t_end:
            tx.send_multipart([RELAY_TAG, v1, b"pkt"])
            got = rsu.recv(timeout_ms=50)
        assert got[0].peer.vehicle_id == 1 and got[0].via.role == "relay" and got[0].data == b"pkt"
        tx.send_multipart([RELAY_TAG, bad, b"pkt"])
        tx.send([b"a relay may not speak for itself"])
        tx.send_multipart([b"XXXX", v1, b"pkt"])
        time.sleep(0.3)
        assert collect(rsu, 1, timeout=0.5) == []
        assert rsu.stats["rejected_relayed_unknown_vehicle"] == 1
        assert rsu.stats["rejected_role"] == 1 and rsu.stats["rejected_envelope"] == 1
    finally:
        tx.close()


def test_sender_never_blocks_without_receiver(keyset, endpoint):
    tx = Sender(endpoint(), keyset / "vehicle_0.key_secret", keyset / "rsu.key")
    try:
        t0 = time.perf_counter()
        assert tx.send([b"x" * 200] * 5000) == 0
        assert time.perf_counter() - t0 < 1.0 and tx.stats["dropped_unavailable"] == 5000
    finally:
        tx.close()


def test_oversized_messages_are_refused(keyset, rsu):
    tx = Sender(rsu.endpoint, keyset / "vehicle_0.key_secret", keyset / "rsu.key")
    try:
        assert send_until(tx, rsu)
        tx.send([b"x" * 100_000])
        assert collect(rsu, 1, timeout=1.0) == []
    finally:
        tx.close()
