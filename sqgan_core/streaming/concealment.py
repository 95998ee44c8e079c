"""Concealment: what the RSU puts in place of tokens that packet loss removed.

A concealer maps an AssembledFrame to the index maps the decoder gets. Lost tokens (sent, missing)
are flagged in `frame.lost_*`; SAMM-masked tokens (never sent) are MASKED and not flagged.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from sqgan_core.streaming.assembler import AssembledFrame

Concealer = Callable[[AssembledFrame], tuple[np.ndarray, np.ndarray]]


def conceal_as_masked(frame: AssembledFrame) -> tuple[np.ndarray, np.ndarray]:
    """The no-model baseline: lost tokens stay MASKED and the ADM fills them like dropped ones."""
    return frame.indices_x, frame.indices_s
