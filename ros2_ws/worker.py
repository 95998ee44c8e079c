"""Bounded hand-off between ROS callbacks and a heavy worker thread: the newest item wins.

Why: encoding or decoding a frame takes ~0.1-0.4 s on CPU. Doing it in a callback starves a
single-threaded executor; queueing frames makes latency grow without bound. A slot per key
(one key for a vehicle, one per vehicle at the RSU) holds only the latest item; replaced items are
counted as dropped. The worker serves keys round-robin so one busy vehicle cannot starve another.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class LatestSlots(Generic[T]):
    def __init__(self, max_keys: int = 64) -> None:
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._cv = threading.Condition()
        self.max_keys = max_keys
        self.dropped: dict[Hashable, int] = {}
        self.closed = False

    def put(self, key: Hashable, item: T) -> None:
        with self._cv:
            if key in self._items:
                self.dropped[key] = self.dropped.get(key, 0) + 1
            elif len(self._items) >= self.max_keys:
                old, _ = self._items.popitem(last=False)
                self.dropped[old] = self.dropped.get(old, 0) + 1
            self._items[key] = item  # re-inserted at the end: round-robin order
            self._items.move_to_end(key)
            self._cv.notify()

    def get(self, timeout: float | None = None) -> tuple[Hashable, T] | None:
        with self._cv:
            if not self._items and not self.closed:
                self._cv.wait(timeout)
            if not self._items:
                return None
            return self._items.popitem(last=False)

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def dropped_total(self) -> int:
        with self._cv:
            return sum(self.dropped.values())


class Worker(Generic[T]):
    """A daemon thread calling `handle(key, item)` for each slot item; exceptions are reported to
    `on_error` (the node logs and counts them) and never kill the thread."""

    def __init__(self, slots: LatestSlots[T], handle: Callable[[Hashable, T], None],
                 on_error: Callable[[Hashable, BaseException], None], name: str = "sqgan-worker") -> None:
        self.slots, self.handle, self.on_error = slots, handle, on_error
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "Worker[T]":
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.slots.get(timeout=0.1)
            if got is None:
                continue
            key, item = got
            try:
                self.handle(key, item)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the stream
                self.on_error(key, exc)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.slots.close()
        self.thread.join(timeout)
