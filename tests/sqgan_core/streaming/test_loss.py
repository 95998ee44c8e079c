import numpy as np
import pytest

from sqgan_core.bitstream import MASKED, FrameHeader
from sqgan_core.entropy import IndexPrior
from sqgan_core.streaming.assembler import FrameAssembler
from sqgan_core.streaming.loss import (LossSpec, LossSpecError, drop_packets, lost_index_packets, lost_token_mask,
                                       parse_loss)
from sqgan_core.streaming.packetizer import Packetizer

U = IndexPrior.uniform(1024)


def test_loss_specs_parse_and_bad_ones_name_the_accepted_forms():
    assert parse_loss("none") == LossSpec("none")
    assert parse_loss("bernoulli:0.2") == LossSpec("bernoulli", 0.2)
    assert parse_loss("gilbert:0.2,4") == LossSpec("gilbert", 0.2, 4.0)
    for bad in ("bernoulli", "bernoulli:1.5", "gilbert:0.2", "gilbert:0.2,0.5", "poisson:0.1", "bernoulli:x"):
        with pytest.raises(LossSpecError, match="bernoulli:P"):
            parse_loss(bad)


def test_gilbert_spec_has_the_asked_mean_loss_and_burst_length():
    model = LossSpec("gilbert", 0.2, 4.0).model()
    rng = np.random.default_rng(0)
    lost = np.array([model.lost(rng) for _ in range(200_000)])
    assert lost.mean() == pytest.approx(0.2, abs=0.01)
    starts = np.flatnonzero(np.diff(lost.astype(int)) == 1)
    ends = np.flatnonzero(np.diff(lost.astype(int)) == -1)
    n = min(len(starts), len(ends))
    bursts = ends[1:n] - starts[:n - 1] if ends[0] < starts[0] else ends[:n] - starts[:n]
    assert bursts.mean() == pytest.approx(4.0, rel=0.1)


def test_lost_token_masks_are_exactly_what_the_assembler_reports():
    """The concealer trains on `lost_token_mask`; the RSU conceals what FrameAssembler flags. They must agree."""
    rng = np.random.default_rng(3)
    k = 16 * 32
    for trial in range(20):
        nx, ns = int(rng.integers(1, k)), int(rng.integers(1, k))
        ix, is_ = np.full(k, MASKED), np.full(k, MASKED)
        keep_x, keep_s = np.zeros(k, bool), np.zeros(k, bool)
        keep_x[rng.choice(k, nx, replace=False)] = True
        keep_s[rng.choice(k, ns, replace=False)] = True
        ix[keep_x], is_[keep_s] = rng.integers(0, 1024, nx), rng.integers(0, 1024, ns)
        header = FrameHeader(7, 16, 32, 0, 0, nx, ns, 10, 10)
        packets = Packetizer(U, U, 7, vehicle_id=1, max_packet_bytes=int(rng.choice([128, 256]))).packetize(
            header, ix, is_, seq=trial)
        survivors, lost_at = drop_packets(packets, LossSpec("bernoulli", 0.3).model(), rng)
        asm = FrameAssembler(U, U, 7, max_packet_bytes=1400, frame_timeout=0.05)
        frames = [f for p in survivors for f in asm.push(p, 0.0)] + asm.poll(1.0)
        p, lost_j = lost_index_packets(packets, lost_at)
        if not frames:  # every copy of the info lost: nothing to compare
            continue
        [frame] = frames
        assert np.array_equal(frame.lost_x, lost_token_mask(keep_x, p, lost_j))
        assert np.array_equal(frame.lost_s, lost_token_mask(keep_s, p, lost_j))
        assert not (frame.lost_x & ~keep_x).any()  # SAMM-masked positions are never "lost"


def test_no_loss_loses_nothing():
    rng = np.random.default_rng(0)
    kept, lost = drop_packets([b"a", b"b"], LossSpec("none").model(), rng)
    assert kept == [b"a", b"b"] and lost == []
    assert not lost_token_mask(np.ones(8, bool), 3, set()).any()
