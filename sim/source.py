"""The protocol shared by the embedded simulator and the CARLA bridge.

ROS nodes, the exporter and the benchmarks only use this protocol, so a scenario's `source`
field (embedded | carla) is the only thing that changes between the two.
"""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

from sim.frame import CameraIntrinsics, SimFrame


@runtime_checkable
class FrameSource(Protocol):
    """A synchronous, ticked camera source: each `step()` advances the world 0.05 s."""

    camera: CameraIntrinsics
    role_name: str

    def step(self) -> SimFrame:
        """Advance one tick and return the frame rendered at the new time."""
        ...

    def close(self) -> None:
        """Release the renderer / server actors; safe to call twice."""
        ...

    def __iter__(self) -> Iterator[SimFrame]: ...

    def __enter__(self) -> "FrameSource": ...

    def __exit__(self, *exc: object) -> None: ...


class SourceBase:
    """Iterator and context-manager plumbing shared by the concrete sources.

    Iteration yields `max_frames` frames (None: forever), so `for f in source` is bounded by
    the scenario's duration while `step()` can always be called directly.
    """

    camera: CameraIntrinsics
    role_name: str = "ego_vehicle"
    max_frames: int | None = None

    def step(self) -> SimFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def skip(self) -> None:
        """Advance one tick without keeping its frame (sources that can skip rendering override
        this); `sim export --stride` uses it to spread frames over a longer drive."""
        self.step()

    def __iter__(self) -> Iterator[SimFrame]:
        n = 0
        while self.max_frames is None or n < self.max_frames:
            yield self.step()
            n += 1

    def __enter__(self) -> "SourceBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
