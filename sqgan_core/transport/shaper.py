"""The link emulator's packet scheduler: pure and clock-driven, so it is tested without sockets.

offer(item, size, now) applies, in order: the loss model, duplication, the bandwidth bottleneck
(a token bucket draining a FIFO of at most `queue_packets`: tail drop when full) and delay + jitter
(+ an extra delay for the packets picked for reordering). due(now) hands back what should be
delivered by `now`. Every buffer is bounded and every drop is counted by cause.
"""
from __future__ import annotations

import heapq
from collections import Counter, deque
from typing import Any, Generic, TypeVar

import numpy as np

from sqgan_core.transport.channel import LinkProfile

T = TypeVar("T")


class LinkShaper(Generic[T]):
    def __init__(self, profile: LinkProfile, seed: int | None = None) -> None:
        self.profile = profile
        self.rng = np.random.default_rng(profile.seed if seed is None else seed)
        self.loss = profile.loss_model()
        self.rate = profile.rate_kbps * 1000 / 8  # bytes per second; 0 = unlimited
        self.tokens = float(profile.burst_bytes)
        self.t_tokens: float | None = None
        self.queue: deque[tuple[T, int]] = deque()
        self.in_flight: list[tuple[float, int, T]] = []
        self._n = 0
        self.stats: Counter[str] = Counter()

    # -- input ----------------------------------------------------------------------------------
    def offer(self, item: T, size: int, now: float) -> None:
        self.stats["received"] += 1
        self.stats["bytes_received"] += size
        if self.loss.lost(self.rng):
            self.stats["dropped_loss"] += 1
            return
        copies = 1
        if self.profile.duplicate and self.rng.random() < self.profile.duplicate:
            copies = 2
            self.stats["duplicated"] += 1
        for _ in range(copies):
            self._enqueue(item, size, now)
        self._drain(now)

    def _enqueue(self, item: T, size: int, now: float) -> None:
        if not self.rate:
            self._schedule(item, now)
            return
        self._drain(now)
        if len(self.queue) >= self.profile.queue_packets:
            self.stats["dropped_queue"] += 1
            return
        self.queue.append((item, size))

    # -- bandwidth ------------------------------------------------------------------------------
    def _refill(self, now: float) -> None:
        if self.t_tokens is None:
            self.t_tokens = now
        self.tokens = min(float(self.profile.burst_bytes), self.tokens + (now - self.t_tokens) * self.rate)
        self.t_tokens = now

    def _drain(self, now: float) -> None:
        if not self.rate:
            return
        self._refill(now)
        while self.queue:
            item, size = self.queue[0]
            need = min(size, self.profile.burst_bytes)  # a packet larger than the bucket still passes
            if self.tokens < need - 1e-6:  # tolerance: float refill must not stall the head
                break
            self.queue.popleft()
            self.tokens -= need
            self._schedule(item, now)

    # -- delay ----------------------------------------------------------------------------------
    def _schedule(self, item: T, now: float) -> None:
        p = self.profile
        delay = p.delay_ms
        if p.jitter_ms:
            delay = float(np.clip(delay + self.rng.normal(0.0, p.jitter_ms), 0.0, delay + 3 * p.jitter_ms))
        if p.reorder and self.rng.random() < p.reorder:
            delay += p.reorder_extra_ms
            self.stats["reordered"] += 1
        if len(self.in_flight) >= p.max_in_flight:
            self.stats["dropped_in_flight"] += 1
            return
        self._n += 1
        heapq.heappush(self.in_flight, (now + delay / 1000.0, self._n, item))

    # -- output ---------------------------------------------------------------------------------
    def due(self, now: float) -> list[T]:
        self._drain(now)
        out = []
        while self.in_flight and self.in_flight[0][0] <= now:
            out.append(heapq.heappop(self.in_flight)[2])
        self.stats["delivered"] += len(out)
        return out

    def next_deadline(self) -> float | None:
        """When something next becomes due (delivery or a queued packet's tokens), or None."""
        times = []
        if self.in_flight:
            times.append(self.in_flight[0][0])
        if self.queue and self.rate and self.t_tokens is not None:
            need = min(self.queue[0][1], self.profile.burst_bytes)
            times.append(self.t_tokens + max(0.0, need - self.tokens) / self.rate)
        return min(times) if times else None

    def queued(self) -> int:
        return len(self.queue) + len(self.in_flight)

    def dropped(self) -> int:
        return sum(v for k, v in self.stats.items() if k.startswith("dropped_"))

    def snapshot(self) -> dict[str, Any]:
        s = dict(self.stats)
        s["dropped_total"] = self.dropped()
        s["queued"] = self.queued()
        return s
