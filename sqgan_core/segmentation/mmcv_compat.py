"""Make mmsegmentation importable with mmcv-lite (no compiled ops) on CPU-only machines.

mmcv-lite ships no `mmcv._ext`, and mmseg imports a few compiled ops at module level (focal loss,
deformable attention...) that Fast-SCNN never calls. When the compiled ops are missing we register a
bare `mmcv.ops` whose `point_sample` is the pure-torch version and whose other names raise a clear
RuntimeError if ever called. With a full mmcv install nothing is patched.
"""
from __future__ import annotations

import importlib
import sys
import types

import torch
import torch.nn.functional as F

_PATCHED = False


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs) -> torch.Tensor:
    """mmcv.ops.point_sample in pure torch (points in [0, 1])."""
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def _missing(name: str):
    def op(*_args, **_kwargs):
        raise RuntimeError(f"mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite lacks; install full mmcv")

    op.__name__ = name
    return op


def ensure_mmseg() -> None:
    """Import-time preparation; raises ImportError naming the missing package."""
    global _PATCHED
    if _PATCHED:
        return
    try:
        import mmcv
    except ImportError as exc:
        raise ImportError(f"the segmenter needs mmcv-lite/mmcv, mmengine and mmsegmentation ({exc})") from None
    try:
        importlib.import_module("mmcv._ext")
    except ImportError:
        ops = types.ModuleType("mmcv.ops")
        ops.__file__ = __file__
        ops.point_sample = point_sample

        def __getattr__(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return _missing(name)

        ops.__getattr__ = __getattr__  # type: ignore[attr-defined]
        sys.modules["mmcv.ops"] = ops
        mmcv.ops = ops  # type: ignore[attr-defined]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module("mmseg")
        importlib.import_module("mmseg.models")
    _PATCHED = True
