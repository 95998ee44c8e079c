"""CurveZMQ sockets of the link: vehicles send with PUSH, the link emulator and the RSU receive with PULL.

Why PUSH/PULL: one-way, fair-queued from many vehicles, and with IMMEDIATE + a small SNDHWM a sender
never buffers for a peer that is not there. Every send is non-blocking: when the link or the RSU is
slow or gone, packets are dropped at the vehicle and counted (a slow RSU never blocks a vehicle).
Reconnection is automatic (100-500 ms backoff) and heartbeats notice a dead peer within ~1.5 s, so
restarts on either side recover well within 2 s.

Authentication: receivers run a ZAP handler (zmq.auth.thread.ThreadAuthenticator) over an allow-list
directory of public certificates; a key not in the list never completes the CURVE handshake. Each
message then carries its sender's key (ZMQ "User-Id"), mapped to the peer's role and vehicle id. A
relay (the link emulator) forwards `[RELAY_TAG, vehicle key, packet]`; the RSU checks that key
against the same allow-list, so the policy lives in one place.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ros2_ws.link.keys import Peer, load_allow_list, load_keypair, load_public

RELAY_TAG = b"SQR1"
MAX_MESSAGE_BYTES = 65536  # larger messages make zmq drop the connection (hostile or broken peer)
RECONNECT_MS, RECONNECT_MAX_MS = 100, 500
HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS = 500, 1500


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
                 *, accept_relayed: bool = True, hwm: int = 4096, context: zmq.Context | None = None) -> None:
        public, secret = load_keypair(secret_key_file)
        self.peers = load_allow_list(allow_dir)
        # One ZAP handler per context (it binds inproc://zeromq.zap.01): a receiver owns its context.
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.auth = ThreadAuthenticator(self.context)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(Path(allow_dir)))
        self.sock = self.context.socket(zmq.PULL)
        _common(self.sock)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.curve_server = True
        self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.accept_relayed = accept_relayed
        self.stats: Counter[str] = Counter()
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def recv(self, timeout_ms: int = 50, max_messages: int = 1000) -> list[Received]:
        out: list[Received] = []
        if not self.poller.poll(timeout_ms):
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
        self.sock.close(0)
        self.auth.stop()
        if self._own_context:
            self.context.term()
