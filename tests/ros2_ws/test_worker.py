import threading
import time

from ros2_ws.worker import LatestSlots, Worker


def test_newest_wins_and_drops_are_counted():
    s = LatestSlots()
    for i in range(5):
        s.put("cam", i)
    assert s.get(0.1) == ("cam", 4) and s.dropped == {"cam": 4} and s.get(0.01) is None


def test_round_robin_and_bounded_keys():
    s = LatestSlots(max_keys=3)
    for k in "abcd":
        s.put(k, k)
    assert [s.get(0.01)[0] for _ in range(3)] == ["b", "c", "d"] and s.dropped == {"a": 1}


def test_worker_survives_errors_and_stops():
    s = LatestSlots()
    seen, errors = [], []
    done = threading.Event()

    def handle(k, item):
        if item == "bad":
            raise ValueError("boom")
        seen.append(item)
        if item == "last":
            done.set()

    w = Worker(s, handle, lambda k, e: errors.append(str(e))).start()
    s.put("x", "bad")
    time.sleep(0.2)
    s.put("x", "last")
    assert done.wait(2.0)
    w.stop()
    assert errors == ["boom"] and seen == ["last"] and not w.thread.is_alive()
