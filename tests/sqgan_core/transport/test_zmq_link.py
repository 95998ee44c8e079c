import time

import pytest
import zmq

from sqgan_core.transport.zmq_link import RELAY_TAG, Receiver, Sender


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
    from sqgan_core.transport.keys import load_public

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


def _wait_for(pred, timeout=5.0, rx=None):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if rx is not None:
            rx.recv(timeout_ms=50)
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_certificates_without_metadata_are_refused_and_counted(tmp_path, keyset, endpoint):
    """pyzmq's own create_certificates writes keys with no role/vehicle_id: fail closed."""
    import shutil

    import zmq.auth

    from sqgan_core.transport.keys import KeyFileError, load_allow_list

    allowed = tmp_path / "allowed"
    shutil.copytree(keyset / "allowed", allowed)
    bare_pub, bare_secret = zmq.auth.create_certificates(tmp_path, "bare")
    shutil.copy(bare_pub, allowed / "bare.key")
    refused = []
    peers = load_allow_list(allowed, on_refused=lambda p, why: refused.append((p.name, why)))
    assert [n for n, _ in refused] == ["bare.key"] and "no role" in refused[0][1]
    assert all(p.vehicle_id is not None for p in peers.values() if p.role == "vehicle")

    lines = []
    rx = Receiver(endpoint(), keyset / "rsu.key_secret", allowed, log=lines.append)
    tx = Sender(rx.endpoint, bare_secret, keyset / "rsu.key")
    try:
        assert rx.stats["allow_list_refused"] == 1 and any("bare.key" in line for line in lines)
        assert send_until(tx, rx, timeout=1.5) == []  # its certificate is in the folder, yet it never speaks
        assert _wait_for(lambda: rx.stats["refused_unlisted_key"] >= 1, rx=rx)
        assert any("127.0.0.1" in line and "not on the allow-list" in line for line in lines)
    finally:
        tx.close()
        rx.close()
    # two keys that claim one vehicle id stop the start, naming both files
    dup = tmp_path / "dup"
    shutil.copytree(keyset / "allowed", dup)
    text = (dup / "vehicle_1.key").read_text().replace('vehicle_id = "1"', 'vehicle_id = "2"')
    from sqgan_core.transport.keys import generate

    generate(tmp_path / "other", "truck", "vehicle", 2)
    shutil.copy(tmp_path / "other" / "truck.key", dup / "truck.key")
    with pytest.raises(KeyFileError, match="both claim vehicle_id 2"):
        load_allow_list(dup)
    assert text  # (the original file is left as generated)


def test_refused_connections_are_counted_by_reason(keyset, endpoint):
    lines = []
    rx = Receiver(endpoint(), keyset / "rsu.key_secret", keyset / "allowed", log=lines.append)
    ctx = zmq.Context.instance()
    plain = ctx.socket(zmq.PUSH)  # no CurveZMQ at all
    plain.setsockopt(zmq.LINGER, 0)
    wrong = Sender(rx.endpoint, keyset / "vehicle_1.key_secret", keyset / "link.key")  # wrong server key
    try:
        plain.connect(rx.endpoint)
        wrong.send([b"x"])
        assert _wait_for(lambda: rx.stats["refused_handshake_protocol"] >= 2, timeout=6.0, rx=rx), dict(rx.stats)
        assert rx.recv(timeout_ms=100) == []
        refusals = [line for line in lines if line.startswith("refused a connection from")]
        assert refusals and all(rx.endpoint in line for line in refusals)
        reasons = [k for k in ("refused_handshake_protocol", "refused_handshake_auth", "refused_handshake_other")
                   if rx.stats[k]]
        assert len(refusals) <= len(reasons)  # rate-limited: one line per reason, not one per attempt
    finally:
        plain.close(0)
        wrong.close()
        rx.close()


def test_refused_handshakes_are_logged_with_their_peer_address(keyset, endpoint):
    """Two bad clients at once, each from a known source port: each line names the client it is about
    (or says the address could not be read), never the other one."""
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    lines = []
    rx = Receiver(endpoint(), keyset / "rsu.key_secret", keyset / "allowed", log=lines.append)
    rx._limited.every_s = 0.0  # every refusal logged, so both clients' lines can be told apart
    p_plain, p_wrong = free_port(), free_port()
    host_port = rx.endpoint[len("tcp://"):]
    plain = zmq.Context.instance().socket(zmq.PUSH)  # no CurveZMQ at all
    plain.setsockopt(zmq.LINGER, 0)
    # libzmq's "source;destination" form pins each client's source port, so its address is known
    wrong = Sender(f"tcp://127.0.0.1:{p_wrong};{host_port}", keyset / "vehicle_1.key_secret", keyset / "link.key")
    try:
        plain.connect(f"tcp://127.0.0.1:{p_plain};{host_port}")
        wrong.send([b"x"])
        def seen(port: int, why: str = "") -> bool:
            return any(f"from 127.0.0.1:{port} " in line and why in line for line in lines)

        assert _wait_for(lambda: seen(p_plain) and seen(p_wrong) and (
            seen(p_plain, "not a CURVE client") or seen(p_wrong, "wrong server key")), timeout=10.0, rx=rx), \
            "\n".join(lines)
    finally:
        plain.close(0)
        wrong.close()
        rx.close()
    refusals = [line for line in lines if line.startswith("refused a connection from")]
    # (either client may also end as "handshake failed", when it hangs up first; it is never the other's reason)
    for line in refusals:
        if f"127.0.0.1:{p_plain} " in line:
            assert "wrong server key" not in line, line
        elif f"127.0.0.1:{p_wrong} " in line:
            assert "not a CURVE client" not in line, line
        else:  # no third address: a peer that could not be read is said to be unknown
            assert "closed before its address could be read" in line, line
    assert rx.stats["refused_handshake_protocol"] + rx.stats["refused_handshake_other"] >= 2


def test_feedback_reaches_only_its_vehicle_and_only_allowed_keys(keyset, endpoint):
    import time

    from sqgan_core.transport.zmq_link import FeedbackPublisher, FeedbackSubscriber, Receiver

    rx = Receiver(endpoint(), keyset / "rsu.key_secret", keyset / "allowed")
    pub = FeedbackPublisher(endpoint(), rx, keyset / "rsu.key_secret")
    mine = FeedbackSubscriber(pub.endpoint, keyset / "vehicle_1.key_secret", keyset / "rsu.key", 1)
    other = FeedbackSubscriber(pub.endpoint, keyset / "vehicle_2.key_secret", keyset / "rsu.key", 2)
    intruder = FeedbackSubscriber(pub.endpoint, keyset / "outside" / "intruder.key_secret", keyset / "rsu.key", 1)
    try:
        got, got_other, got_intruder = [], [], []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:  # PUB drops until the subscription has arrived
            pub.publish(1, {"loss_share": 0.25, "delivered_kbps": 20.0})
            time.sleep(0.05)
            got += mine.poll(50)
            got_other += other.poll(0)
            got_intruder += intruder.poll(0)
        assert got and got[0] == {"loss_share": 0.25, "delivered_kbps": 20.0}
        time.sleep(0.2)
        assert not got_other + other.poll(50)  # vehicle 2 subscribed to its own reports only
        assert not got_intruder + intruder.poll(50)  # a key off the allow-list never connects
        assert rx.stats["refused_unlisted_key"] >= 1
    finally:
        for s in (mine, other, intruder, pub):
            s.close()
        rx.close()
