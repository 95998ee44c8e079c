"""CurveZMQ sockets of the link: vehicles send with PUSH, the link emulator and the RSU receive with PULL.

Why PUSH/PULL: one-way, fair-queued from many vehicles, and with IMMEDIATE + a small SNDHWM a sender
never buffers for a peer that is not there. Every send is non-blocking: when the link or the RSU is
slow or gone, packets are dropped at the vehicle and counted (a slow RSU never blocks a vehicle).
Reconnection is automatic (100-500 ms backoff) and heartbeats notice a dead peer within ~1.5 s, so
restarts on either side recover well within 2 s.

Authentication: receivers run a ZAP handler (zmq.auth.thread.ThreadAuthenticator) whose CURVE check
is the allow-list loaded by `load_allow_list` (certificates without the metadata it enforces are
refused there); a key not in it never completes the CURVE handshake. Each message then carries its
sender's key (ZMQ "User-Id"), mapped to the peer's role and vehicle id. A relay (the link emulator)
forwards `[RELAY_TAG, vehicle key, packet]`; the RSU checks that key against the same allow-list, so
the policy lives in one place.

Refused connections are counted by reason in `Receiver.stats` (and so on the RSU's /diagnostics):
`refused_unlisted_key` (from the ZAP handler, with the peer's address in the log line), and, from a
socket monitor, `refused_handshake_protocol` (a plain, unencrypted client; a client that used a wrong
server key), `refused_handshake_auth` and `refused_handshake_other`. Log lines are rate-limited to
one per reason every LOG_EVERY_S seconds, with the count of those held back.

The monitor's events name only the local endpoint (libzmq's v2 events, which carry the peer, are a
draft API pyzmq's wheels leave out), so the peer of a failed handshake comes from the accepted
connection's file descriptor (`_MonitorThread`). It is read only when it provably still belongs to
that connection, and a line without it says so: a client that fails within microseconds of its
accept can close before the thread reads it.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import parse_monitor_message

from sqgan_core.transport.keys import Peer, load_allow_list, load_keypair, load_public

RELAY_TAG = b"SQR1"
MAX_MESSAGE_BYTES = 65536  # larger messages make zmq drop the connection (hostile or broken peer)
RECONNECT_MS, RECONNECT_MAX_MS = 100, 500
HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS = 500, 1500
LOG_EVERY_S = 10.0
HANDSHAKE_EVENTS = {  # socket monitor events of a refused handshake -> the stats key that counts them
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "refused_handshake_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused_handshake_auth",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "refused_handshake_other",
}


PROTOCOL_DETAIL = {  # the value of EVENT_HANDSHAKE_FAILED_PROTOCOL -> what it means for a CURVE server
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "not a CURVE client (a plain, unencrypted connection)",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its CURVE HELLO did not decrypt (a wrong server key)",
}
REASON_TEXT = {
    "refused_handshake_protocol": "not a CURVE client of this server key (plain connection, or a wrong server key)",
    "refused_handshake_auth": "authentication failed",
    "refused_handshake_other": "handshake failed",
}


class RateLimitedLog:
    """At most one line per reason every `every_s` seconds; the next line says how many were held back."""

    def __init__(self, log: Callable[[str], None], every_s: float = LOG_EVERY_S) -> None:
        self.log, self.every_s = log, every_s
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, reason: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(reason, -1e9) < self.every_s:
                self._held[reason] += 1
                return
            held, self._held[reason] = self._held[reason], 0
            self._last[reason] = now
        self.log(message + (f" (and {held} more since the last such line)" if held else ""))


class _AllowListAuthenticator(ThreadAuthenticator):
    """The ZAP handler, with the CURVE check done against the loaded allow-list (not the raw directory)
    and the peer address of each refused key counted and logged."""

    def __init__(self, context: zmq.Context, allowed: set[bytes], on_refused: Callable[[str, str], None]) -> None:
        super().__init__(context)
        self.allowed, self.on_refused = allowed, on_refused
        self._address = ""

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._address = msg[3].decode("utf8", "replace") if len(msg) > 3 else ""
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:  # credentials provider for configure_curve_callback
        if key in self.allowed:
            return True
        self.on_refused(self._address, key.decode("ascii", "replace"))
        return False


def _peer_address(fd: int, local_port: int | None) -> str | None:
    """host:port of the TCP peer on `fd` when it is a connection to our port, else None (closed, reused
    by another socket, not TCP). A dup, so the descriptor libzmq owns is never closed here."""
    if local_port is None:
        return None
    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=dup)
    except OSError:  # not a socket (any more)
        os.close(dup)
        return None
    try:
        with sock as s:
            if s.family not in (socket.AF_INET, socket.AF_INET6) or s.getsockname()[1] != local_port:
                return None
            host, port = s.getpeername()[:2]
    except OSError:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _MonitorThread(threading.Thread):
    """Reads a receiver's socket monitor as events come (the receive loop may be busy decoding), counts
    refused handshakes by reason and logs each with its peer's address when that can be known.

    Why the attribution holds: libzmq emits ACCEPTED(fd) after accept(), and a failed handshake's event
    then DISCONNECTED(fd) back to back from the connection's I/O thread (one I/O thread: nothing can come
    between), both before it closes fd. So a peer read from fd is this connection's only if its
    DISCONNECTED(fd) was not yet queued after the read (else fd may have been closed and even reused
    first: the address is dropped, never guessed), and a failure belongs to the DISCONNECTED that
    follows it."""

    EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | sum(HANDSHAKE_EVENTS)

    def __init__(self, monitor: zmq.Socket, endpoint: str, stats: Counter[str], limited: RateLimitedLog,
                 *, attribute: bool) -> None:
        super().__init__(daemon=True, name="sqgan-zmq-monitor")
        self.monitor, self.endpoint, self.stats, self.limited = monitor, endpoint, stats, limited
        port = endpoint.rsplit(":", 1)[-1] if endpoint.startswith("tcp://") else ""
        self.local_port = int(port) if attribute and port.isdigit() else None
        self.peers: dict[int, str] = {}  # fd -> address of connections accepted and not yet disconnected
        self.stop = threading.Event()

    def _read_all(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(parse_monitor_message(self.monitor.recv_multipart(zmq.NOBLOCK)))
            except zmq.Again:
                return out

    def run(self) -> None:
        queue: list[dict] = []
        failed: tuple[str, str] | None = None  # (stats key, why) waiting for its DISCONNECTED
        while not self.stop.is_set():
            if not queue:
                if not self.monitor.poll(100):
                    continue
                queue = self._read_all()
                continue
            event = queue.pop(0)
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_ACCEPTED:
                address = _peer_address(value, self.local_port)
                queue += self._read_all()
                if address is not None and not any(e["event"] == zmq.EVENT_DISCONNECTED and e["value"] == value
                                                   for e in queue):
                    self.peers[value] = address
            elif kind == zmq.EVENT_DISCONNECTED:
                address = self.peers.pop(value, None)
                if failed is not None:
                    self._log(*failed, address)
                    failed = None
            elif kind in HANDSHAKE_EVENTS:
                if failed is not None:  # no DISCONNECTED between two failures: say it without an address
                    self._log(*failed, None)
                key = HANDSHAKE_EVENTS[kind]
                self.stats[key] += 1
                why = PROTOCOL_DETAIL.get(value, REASON_TEXT[key]) if key == "refused_handshake_protocol" \
                    else REASON_TEXT[key]
                failed = (key, why)
        if failed is not None:
            self._log(*failed, None)

    def _log(self, key: str, why: str, address: str | None) -> None:
        peer = f"from {address}" if address else "from a peer that closed before its address could be read"
        self.limited(key, f"refused a connection {peer} on {self.endpoint}: {why}")


def _common(sock: zmq.Socket) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)


class Sender:
    """A CURVE client PUSH socket that never blocks: `send` returns how many packets left."""

    def __init__(self, endpoint: str, secret_key_file: str | os.PathLike[str], server_key_file: str | os.PathLike[str],
                 *, hwm: int = 64, context: zmq.Context | None = None) -> None:
        public, secret = load_keypair(secret_key_file)
        server = load_public(server_key_file)
        self.context = context or zmq.Context.instance()
        self.sock = self.context.socket(zmq.PUSH)
        _common(self.sock)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on completed (authenticated) connections
        self.sock.curve_publickey, self.sock.curve_secretkey, self.sock.curve_serverkey = public, secret, server
        self.sock.connect(endpoint)
        self.endpoint = endpoint
        self.public_key = public
        self.stats: Counter[str] = Counter()

    def send(self, packets: list[bytes]) -> int:
        sent = 0
        for p in packets:
            try:
                self.sock.send(p, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                self.stats["dropped_unavailable"] += 1
        self.stats["sent"] += sent
        return sent

    def send_multipart(self, parts: list[bytes]) -> bool:
        try:
            self.sock.send_multipart(parts, zmq.NOBLOCK)
            self.stats["sent"] += 1
            return True
        except zmq.Again:
            self.stats["dropped_unavailable"] += 1
            return False

    def close(self) -> None:
        self.sock.close(0)


@dataclass(frozen=True)
class Received:
    data: bytes
    peer: Peer  # the vehicle the packet speaks for (the relay's forwarded vehicle when relayed)
    via: Peer | None = None  # the relay, when relayed

    @property
    def expect_vehicle(self) -> int | None:
        return self.peer.vehicle_id


class Receiver:
    """A CURVE server PULL socket with an allow-list; `recv` yields authenticated packets only."""

    def __init__(self, endpoint: str, secret_key_file: str | os.PathLike[str], allow_dir: str | os.PathLike[str],
                 *, accept_relayed: bool = True, hwm: int = 4096, context: zmq.Context | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        import logging

        # every reason present from the start: /diagnostics shows 0, and the ZAP and monitor threads
        # never add a key while the node copies the counters
        self.stats: Counter[str] = Counter({k: 0 for k in ("refused_unlisted_key", *HANDSHAKE_EVENTS.values())})
        self._say = log or logging.getLogger("sqgan.link").warning
        self._limited = RateLimitedLog(self._say)
        public, secret = load_keypair(secret_key_file)

        def refused_cert(path: Path, why: str) -> None:
            self.stats["allow_list_refused"] += 1
            self._say(f"allow-list: refused {path}: {why}")

        self.peers = load_allow_list(allow_dir, on_refused=refused_cert)
        # One ZAP handler per context (it binds inproc://zeromq.zap.01): a receiver owns its context.
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.auth = _AllowListAuthenticator(self.context, set(self.peers), self._refused_key)
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self.auth)
        self.sock = self.context.socket(zmq.PULL)
        _common(self.sock)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.curve_server = True
        self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.accept_relayed = accept_relayed
        self.monitor = self.sock.get_monitor_socket(_MonitorThread.EVENTS)
        # With more I/O threads two connections' events may interleave: count, but name no peer.
        self._watch = _MonitorThread(self.monitor, self.endpoint, self.stats, self._limited,
                                     attribute=self.context.get(zmq.IO_THREADS) == 1)
        self._watch.start()

    def _refused_key(self, address: str, key: str) -> None:
        """ZAP handler thread: a CURVE client whose key is not on the allow-list."""
        self.stats["refused_unlisted_key"] += 1
        self._limited("refused_unlisted_key", f"refused a connection from {address or 'an unknown address'}: "
                                              f"key {key[:8]}... is not on the allow-list")

    def recv(self, timeout_ms: int = 50, max_messages: int = 1000) -> list[Received]:
        out: list[Received] = []
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return out
        for _ in range(max_messages):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            got = self._classify(frames)
            if got is not None:
                out.append(got)
        return out

    def _classify(self, frames: list[zmq.Frame]) -> Received | None:
        self.stats["messages"] += 1
        try:
            user = frames[0].get("User-Id").encode()
        except (zmq.ZMQError, AttributeError):
            user = b""
        sender = self.peers.get(user)
        if sender is None:  # cannot happen with the ZAP handler running; refuse anyway
            self.stats["rejected_unknown_key"] += 1
            return None
        if len(frames) == 1:
            if sender.role != "vehicle":
                self.stats["rejected_role"] += 1
                return None
            return Received(frames[0].bytes, sender)
        if len(frames) == 3 and self.accept_relayed and sender.role == "relay" and frames[0].bytes == RELAY_TAG:
            inner = self.peers.get(frames[1].bytes)
            if inner is None or inner.role != "vehicle":
                self.stats["rejected_relayed_unknown_vehicle"] += 1
                return None
            return Received(frames[2].bytes, inner, sender)
        self.stats["rejected_envelope"] += 1
        return None

    def close(self) -> None:
        self._watch.stop.set()
        self._watch.join(2.0)
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(0)
        self.sock.close(0)
        self.auth.stop()
        if self._own_context:
            self.context.term()


# ---- the back channel: RSU -> vehicles -----------------------------------------------------------
FEEDBACK_TOPIC = b"fb"


def feedback_topic(vehicle_id: int) -> bytes:
    return FEEDBACK_TOPIC + str(int(vehicle_id)).encode() + b":"


class FeedbackPublisher:
    """The RSU's side of the back channel: a CURVE server PUB socket in a Receiver's context, so the
    same ZAP handler and allow-list admit the same vehicles and nothing else. One small JSON report
    per vehicle and period (loss share, delivered rate): what the vehicle's rate controller adapts to.
    It bypasses the link emulator (a downlink the emulator does not model) and, being PUB, drops
    rather than blocks when a vehicle is slow or gone."""

    def __init__(self, endpoint: str, receiver: "Receiver", secret_key_file: str | os.PathLike[str]) -> None:
        public, secret = load_keypair(secret_key_file)
        self.sock = receiver.context.socket(zmq.PUB)
        _common(self.sock)
        self.sock.setsockopt(zmq.SNDHWM, 16)
        self.sock.curve_server = True
        self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stats: Counter[str] = Counter()

    def publish(self, vehicle_id: int, report: dict) -> None:
        import json

        try:
            self.sock.send_multipart([feedback_topic(vehicle_id), json.dumps(report).encode()], zmq.NOBLOCK)
            self.stats["feedback_sent"] += 1
        except zmq.Again:
            self.stats["feedback_dropped"] += 1

    def close(self) -> None:
        self.sock.close(0)


class FeedbackSubscriber:
    """The vehicle's side: a CURVE client SUB socket (its own key, the RSU's public key) that reads the
    reports for its vehicle id. Malformed reports are counted and skipped, never raised."""

    def __init__(self, endpoint: str, secret_key_file: str | os.PathLike[str], server_key_file: str | os.PathLike[str],
                 vehicle_id: int, *, context: zmq.Context | None = None) -> None:
        public, secret = load_keypair(secret_key_file)
        server = load_public(server_key_file)
        self.context = context or zmq.Context.instance()
        self.sock = self.context.socket(zmq.SUB)
        _common(self.sock)
        self.sock.setsockopt(zmq.MAXMSGSIZE, 4096)
        self.sock.curve_publickey, self.sock.curve_secretkey, self.sock.curve_serverkey = public, secret, server
        self.sock.setsockopt(zmq.SUBSCRIBE, feedback_topic(vehicle_id))
        self.sock.connect(endpoint)
        self.stats: Counter[str] = Counter()

    def poll(self, timeout_ms: int = 0) -> list[dict]:
        import json

        out = []
        if not self.sock.poll(timeout_ms):
            return out
        while True:
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                report = json.loads(parts[1]) if len(parts) == 2 else None
                if not isinstance(report, dict):
                    raise ValueError("not a JSON object")
                out.append(report)
                self.stats["feedback_received"] += 1
            except (ValueError, UnicodeDecodeError):
                self.stats["feedback_malformed"] += 1
        return out

    def close(self) -> None:
        self.sock.close(0)
