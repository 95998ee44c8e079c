import threading
import time

import pytest

from sqgan_core.transport.channel import parse_profile
from sqgan_core.transport.emulator import LinkEmulator, strip_ros_args
from sqgan_core.transport.zmq_link import Receiver, Sender


@pytest.fixture
def wired(keyset, endpoint):
    rsu = Receiver(endpoint(), keyset / "rsu.key_secret", keyset / "allowed")
    made = []

    def make(profile):
        emu = LinkEmulator(profile, listen=endpoint(), forward=rsu.endpoint, secret_key=keyset / "link.key_secret",
                           allow_dir=keyset / "allowed", server_key=keyset / "rsu.key")
        th = threading.Thread(target=emu.run, daemon=True)
        th.start()
        veh = Sender(emu.listen_endpoint, keyset / "vehicle_1.key_secret", keyset / "link.key")
        made.append((emu, th, veh))
        return emu, veh

    yield rsu, make
    for emu, th, veh in made:
        emu.stop_event.set()
        th.join(5)
        emu.close()
        veh.close()
    rsu.close()


def pump(veh, rsu, n, payload=lambda i: b"p%05d" % i):
    t_end = time.monotonic() + 5
    while not veh.send([b"warmup"]) and time.monotonic() < t_end:  # wait for the CURVE handshake
        time.sleep(0.02)
    got = []
    for i in range(n):
        while not veh.send([payload(i)]):  # the sender drops when its queue is full: pace instead
            time.sleep(0.002)
        got += rsu.recv(timeout_ms=0)
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        got += rsu.recv(timeout_ms=50)
    return got


def test_relays_with_vehicle_identity(wired):
    rsu, make = wired
    emu, veh = make(parse_profile({"name": "clean"}))
    got = [g for g in pump(veh, rsu, 200) if g.data != b"warmup"]
    assert [g.data for g in got] == [b"p%05d" % i for i in range(200)] and all(g.peer.vehicle_id == 1 and g.via.role == "relay" for g in got)


def test_loss_is_applied_and_counted(wired):
    rsu, make = wired
    emu, veh = make(parse_profile({"name": "b", "loss": {"model": "bernoulli", "p": 0.2}, "seed": 3}))
    got = pump(veh, rsu, 1000)
    snap = emu.snapshot()
    assert snap["received"] == 1001 and snap["dropped_loss"] + len(got) == 1001
    assert 120 < snap["dropped_loss"] < 280


def test_strip_ros_args():
    assert strip_ros_args(["--profile", "x", "--ros-args", "-r", "__node:=l"]) == ["--profile", "x"]
