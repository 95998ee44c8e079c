"""Datasets on disk (Cityscapes layout, which the simulator's export also writes)."""
from sqgan_core.data.cityscapes import CityscapesPairs, DatasetError

__all__ = ["CityscapesPairs", "DatasetError"]
