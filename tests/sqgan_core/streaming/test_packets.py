import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqgan_core.bitstream import MASKED, FrameHeader
from sqgan_core.entropy import IndexPrior
from sqgan_core.streaming.assembler import FrameAssembler
from sqgan_core.streaming.concealment import conceal_as_masked
from sqgan_core.streaming.packetizer import Packetizer
from sqgan_core.streaming.wire import COMMON_SIZE, KIND_INDEX, KIND_INFO, OVERHEAD, PacketError, parse_packet, seq_diff

U = IndexPrior.uniform(1024)
MODEL = 0xBEEF


def make_tokens(gh=16, gw=32, mx=0.5, ms=0.5, seed=0, prior=None):
    rng = np.random.default_rng(seed)
    k = gh * gw
    nx, ns = int(mx * k), int(ms * k)
    ix = np.full(k, MASKED)
    is_ = np.full(k, MASKED)
    p = None if prior is None else prior.probabilities
    ix[rng.choice(k, nx, replace=False)] = rng.choice(1024, nx, p=p)
    is_[rng.choice(k, ns, replace=False)] = rng.integers(0, 1024, ns)
    h = FrameHeader(MODEL, gh, gw, 3, 5, nx, ns, 10, 10)
    return h, ix, is_


def packetize(seq=10, vehicle=3, size=256, copies=2, **kw):
    h, ix, is_ = make_tokens(**kw)
    pk = Packetizer(U, U, MODEL, vehicle_id=vehicle, max_packet_bytes=size, info_copies=copies)
    orig = (min(250, 16 * h.height), min(507, 16 * h.width))  # a camera scaled down to fit (<= 16x)
    return h, ix, is_, pk.packetize(h, ix, is_, seq=seq, stamp=(1700000000, 123), orig_size=orig,
                                    frame_id="ego_vehicle/rgb_front")


def assembler(**kw):
    return FrameAssembler(U, U, MODEL, **kw)


def feed(asm, packets, now=0.0, **kw):
    out = []
    for p in packets:
        out += asm.push(p, now, **kw)
    return out


def test_roundtrip_all_packets():
    h, ix, is_, pkts = packetize()
    frames = feed(assembler(), pkts)
    assert len(frames) == 1
    f = frames[0]
    assert f.complete and f.vehicle_id == 3 and f.seq == 10
    assert np.array_equal(f.indices_x, ix) and np.array_equal(f.indices_s, is_)
    assert f.info.header == h and f.stamp == (1700000000, 123)
    assert (f.info.orig_height, f.info.orig_width) == (250, 507) and f.info.frame_id == "ego_vehicle/rgb_front"


@pytest.mark.parametrize("size", [96, 128, 256, 1400])
def test_every_packet_fits_the_payload_size(size):
    _, _, _, pkts = packetize(size=size, gh=16, gw=32, mx=0.9, ms=0.9)
    assert all(len(p) <= size for p in pkts)
    headers = [parse_packet(p).header for p in pkts]
    assert sorted(h.index for h in headers) == list(range(len(pkts)))
    assert all(h.count == len(pkts) for h in headers)


def test_index_packets_interleave_scan_order():
    h, ix, is_, pkts = packetize()
    asm = assembler()
    idx = [p for p in pkts if parse_packet(p).header.kind == KIND_INDEX]
    n_idx = len(idx)
    assert n_idx >= 2
    lost = parse_packet(idx[1]).header.index
    frames = feed(asm, [p for p in pkts if p is not idx[1]]) + asm.poll(10.0)
    f = frames[0]
    kept_x = np.flatnonzero(ix != MASKED)
    assert np.array_equal(np.flatnonzero(f.lost_x), kept_x[lost::n_idx])  # every n-th kept token: scattered
    assert np.all(f.indices_x[f.lost_x] == MASKED)
    ok = (ix != MASKED) & ~f.lost_x
    assert np.array_equal(f.indices_x[ok], ix[ok])


def test_losing_any_single_packet_never_loses_the_frame():
    h, ix, is_, pkts = packetize(mx=0.8, ms=0.6, seed=4)
    for drop in range(len(pkts)):
        asm = assembler()
        frames = feed(asm, pkts[:drop] + pkts[drop + 1:]) + asm.poll(10.0)
        assert len(frames) == 1, f"dropping packet {drop} lost the frame"
        kind = parse_packet(pkts[drop]).header.kind
        assert frames[0].complete == (kind == KIND_INFO)


def test_info_lost_everywhere_loses_the_frame_and_counts_it():
    _, _, _, pkts = packetize()
    asm = assembler()
    out = feed(asm, [p for p in pkts if parse_packet(p).header.kind == KIND_INDEX]) + asm.poll(10.0)
    assert out == []
    st_ = asm.stats(3)
    assert st_.frames_lost == 1 and st_.packets_missing == 2


def test_large_masks_are_fragmented_and_still_protected():
    h, ix, is_, pkts = packetize(size=96, gh=40, gw=60, mx=0.5, ms=0.5)  # masks >> one packet
    infos = [parse_packet(p) for p in pkts if parse_packet(p).header.kind == KIND_INFO]
    assert len(infos) >= 4 and len(infos) % 2 == 0
    for drop in range(0, len(pkts), 7):
        asm = assembler()
        frames = feed(asm, pkts[:drop] + pkts[drop + 1:]) + asm.poll(10.0)
        assert len(frames) == 1


def test_overhead_is_what_the_header_says():
    _, _, _, pkts = packetize()
    assert OVERHEAD == COMMON_SIZE + 4 == 15
    assert all(len(parse_packet(p).body) == len(p) - OVERHEAD for p in pkts)


def test_skewed_prior_makes_index_packets_smaller():
    rng = np.random.default_rng(1)
    p = np.maximum(rng.dirichlet(np.full(1024, 0.05)), 1e-9)
    prior = IndexPrior(p / p.sum())
    h, ix, is_ = make_tokens(prior=prior, mx=0.8, ms=0.0)
    sizes = {}
    for name, pr in (("uniform", U), ("matched", prior)):
        pk = Packetizer(pr, U, MODEL, vehicle_id=1, max_packet_bytes=1400)
        sizes[name] = sum(len(q) for q in pk.packetize(h, ix, is_, seq=0))
        asm = FrameAssembler(pr, U, MODEL)
        f = feed(asm, pk.packetize(h, ix, is_, seq=0))[0]
        assert np.array_equal(f.indices_x, ix)
    assert sizes["matched"] < sizes["uniform"]


def test_zero_rate_frame_is_info_only():
    h, ix, is_, pkts = packetize(mx=0.0, ms=0.0)
    assert all(parse_packet(p).header.kind == KIND_INFO for p in pkts)
    f = feed(assembler(), pkts)[0]
    assert f.complete and np.all(f.indices_x == MASKED)


# ---- parsing and rejection ---------------------------------------------------------------------

def _reseal(body_and_head: bytes) -> bytes:
    import binascii
    return body_and_head + struct.pack(">I", binascii.crc32(body_and_head))


@pytest.mark.parametrize("mutate,reason", [
    (lambda p: p[:10], "too_short"),
    (lambda p: b"XX" + p[2:], "bad_magic"),
    (lambda p: p[:-1] + bytes([p[-1] ^ 1]), "bad_crc"),
    (lambda p: p[:20] + bytes([p[20] ^ 0x10]) + p[21:], "bad_crc"),
    (lambda p: _reseal(p[:2] + bytes([0x21]) + p[3:-4]), "bad_version"),
    (lambda p: _reseal(p[:2] + bytes([0x17]) + p[3:-4]), "bad_kind"),
    (lambda p: _reseal(p[:7] + bytes([9, 3]) + p[9:-4]), "bad_fields"),
])
def test_malformed_packets_raise_typed_errors(mutate, reason):
    _, _, _, pkts = packetize()
    with pytest.raises(PacketError) as ei:
        parse_packet(mutate(pkts[0]))
    assert ei.value.reason == reason


def test_wrong_model_stale_duplicate_and_spoofed_are_counted():
    _, _, _, pkts = packetize(seq=100)
    asm = assembler()
    other = FrameAssembler(U, U, MODEL ^ 1)
    other.push(pkts[0], 0.0)
    assert other.rejected["wrong_model"] == 1
    assert asm.push(pkts[0], 0.0, expect_vehicle=4) == [] and asm.rejected["spoofed_vehicle"] == 1
    feed(asm, pkts)
    asm.push(pkts[1], 0.0)  # after release: the frame is closed -> duplicate
    assert asm.rejected["duplicate"] == 1
    _, _, _, old = packetize(seq=95)
    asm.push(old[0], 0.0)
    assert asm.rejected["stale"] == 1 and asm.stats(3).packets_stale == 1


def test_frames_released_in_order_and_older_partials_flushed_by_newer():
    _, _, _, a = packetize(seq=1)
    _, _, _, b = packetize(seq=2, seed=1)
    asm = assembler()
    out = feed(asm, a[:-2])  # frame 1 misses its last index packet and info copy
    assert out == []
    out = feed(asm, b)
    assert [f.seq for f in out] == [1, 2] and not out[0].complete and out[1].complete


def test_timeout_releases_partial_frames():
    _, _, _, a = packetize(seq=5)
    asm = assembler(frame_timeout=0.1)
    assert feed(asm, a[:-2], now=0.0) == []
    assert asm.poll(0.05) == []
    assert [f.seq for f in asm.poll(0.11)] == [5]


def test_sequence_wraps_and_restart_is_detected():
    assert seq_diff(0, 65535) == 1 and seq_diff(65535, 0) == -1 and seq_diff(5, 5) == 0
    asm = assembler()
    for s in (65534, 65535, 0, 1):
        assert [f.seq for f in feed(asm, packetize(seq=s)[3])] == [s]
    # a restarted vehicle (new random initial sequence number far behind) is accepted at once
    assert [f.seq for f in feed(asm, packetize(seq=40000)[3])] == [40000]
    # and after idle_reset seconds of silence any sequence number starts a new stream
    assert [f.seq for f in feed(asm, packetize(seq=39990)[3], now=5.0)] == [39990]
    assert asm.stats(3).resets == 2


def test_frames_lost_across_an_idle_pause_are_counted_unseen_but_a_restart_is_not_a_gap():
    """A lock-step simulator waits seconds for a frame lost on the link, so the stream pauses longer
    than idle_reset: the frames missing when it resumes were lost, and must be counted as such."""
    asm = assembler(idle_reset=1.0)
    feed(asm, packetize(seq=10)[3], now=0.0)
    assert [f.seq for f in feed(asm, packetize(seq=12)[3], now=5.0)] == [12]  # frame 11 never arrived
    assert asm.stats(3).frames_unseen == 1
    feed(asm, packetize(seq=3)[3], now=10.0)  # a restarted vehicle, sequence numbers from scratch
    feed(asm, packetize(seq=30000)[3], now=15.0)  # or from a new random start
    assert asm.stats(3).frames_unseen == 1


def test_memory_is_bounded_per_vehicle_and_in_vehicles():
    asm = assembler(max_frames_in_flight=3, max_vehicles=4)
    for s in range(50):
        feed(asm, packetize(seq=s)[3][:-2])
    assert asm.in_flight() <= 3
    for v in range(20):
        feed(asm, packetize(seq=1, vehicle=v)[3][:1])
    assert len(asm.vehicles) <= 4 and asm.rejected["vehicle_evicted"] >= 16


def test_redundant_info_copies_are_received_not_lost_or_late():
    """A clean, in-order stream: the frame completes before its second info copy arrives. That copy
    was never needed, so it is neither lost when the frame closes nor late when it comes."""
    _, _, _, a = packetize(seq=7)
    asm = assembler()
    feed(asm, a[:-1])  # complete without the second info copy
    assert asm.stats(3).packets_missing == 0
    asm.push(a[-1], 0.0)
    s = asm.stats(3)
    assert s.packets_missing == 0 and s.packets_late == 0 and s.packets_redundant == 1
    assert s.packets_received == len(a) and s.bytes_received == sum(len(p) for p in a)
    for seq in range(8, 13):  # a stream of them: every packet received, none late
        feed(asm, packetize(seq=seq, seed=seq)[3])
    s = asm.stats(3)
    assert s.packets_late == 0 and s.packets_missing == 0


def test_needed_packets_that_come_late_are_taken_out_of_the_lost():
    _, _, _, a = packetize(seq=7)
    _, _, _, b = packetize(seq=8, seed=1)
    asm = assembler()
    feed(asm, a[:-3] + a[-2:])  # one index packet missing
    feed(asm, b)  # the next frame closes frame 7 without it
    assert asm.stats(3).packets_missing == 1
    asm.push(a[-3], 0.0)
    s = asm.stats(3)
    assert s.packets_missing == 0 and s.packets_late == 1


def test_conceal_default_keeps_lost_tokens_masked():
    h, ix, is_, pkts = packetize()
    asm = assembler()
    f = (feed(asm, pkts[:2] + pkts[3:]) + asm.poll(9.0))[0]
    cx, cs = conceal_as_masked(f)
    assert np.all(cx[f.lost_x] == MASKED) and np.array_equal(cx, f.indices_x)


def test_packetizer_rejects_bad_input():
    h, ix, is_ = make_tokens()
    with pytest.raises(ValueError, match="vehicle id"):
        Packetizer(U, U, MODEL, vehicle_id=70000)
    with pytest.raises(ValueError, match="packet size"):
        Packetizer(U, U, MODEL, vehicle_id=1, max_packet_bytes=10)
    pk = Packetizer(U, U, MODEL, vehicle_id=1)
    with pytest.raises(ValueError, match="frame_id"):
        pk.packetize(h, ix, is_, seq=0, frame_id="x" * 80)
    with pytest.raises(ValueError, match="kept-token"):
        pk.packetize(h, ix[:-1], is_, seq=0)


@settings(max_examples=60, deadline=None)
@given(gh=st.integers(1, 20), gw=st.integers(1, 40), mx=st.floats(0, 1), ms=st.floats(0, 1),
       size=st.sampled_from([96, 128, 256, 512]), seed=st.integers(0, 1000),
       loss=st.floats(0, 0.6))
def test_random_loss_never_crashes_and_keeps_received_tokens_exact(gh, gw, mx, ms, size, seed, loss):
    h, ix, is_, pkts = packetize(gh=gh, gw=gw, mx=mx, ms=ms, size=size, seed=seed)
    rng = np.random.default_rng(seed)
    got = [p for p in pkts if rng.random() >= loss]
    rng.shuffle(got)
    asm = assembler()
    frames = feed(asm, got) + asm.poll(10.0)
    assert len(frames) <= 1
    for f in frames:
        ok_x = (ix != MASKED) & ~f.lost_x
        assert np.array_equal(f.indices_x[ok_x], ix[ok_x])
        assert np.all(f.indices_x[~ok_x] == MASKED)
        assert f.packets_received <= len(got)


def test_fuzz_10k_garbage_and_mutated_packets_fast():
    """Random bytes, bit flips and re-sealed mutations (valid CRC, hostile fields) never raise."""
    _, _, _, pkts = packetize()
    rng = np.random.default_rng(0)
    asm = assembler(max_tokens=2048)
    t0 = time.perf_counter()
    for i in range(10_000):
        base = bytearray(pkts[i % len(pkts)])
        mode = i % 4
        if mode == 0:
            data = rng.bytes(int(rng.integers(0, 300)))
        elif mode == 1:
            for _ in range(int(rng.integers(1, 8))):
                base[int(rng.integers(0, len(base)))] ^= 1 << int(rng.integers(0, 8))
            data = bytes(base)
        else:
            body = bytearray(base[:-4])
            for _ in range(int(rng.integers(1, 6))):
                body[int(rng.integers(2 if mode == 2 else 11, len(body)))] = int(rng.integers(0, 256))
            data = _reseal(bytes(body))
        asm.push(data, i * 1e-3)
        asm.poll(i * 1e-3)
    assert sum(asm.rejected.values()) > 5000
    assert asm.in_flight() <= asm.max_frames_in_flight * len(asm.vehicles)
    assert time.perf_counter() - t0 < 60


def test_hostile_original_size_is_refused():
    """The receiver scales back to the camera size in the info packet: a sender must not be able to
    ask for a gigapixel output."""
    import binascii

    _, _, _, pkts = packetize()
    info = next(p for p in pkts if parse_packet(p).header.kind == KIND_INFO)
    body = bytearray(info[:-4])
    struct.pack_into(">HH", body, COMMON_SIZE + 16, 60000, 60000)  # orig h, w
    bad = bytes(body) + struct.pack(">I", binascii.crc32(bytes(body)))
    asm = assembler()
    assert asm.push(bad, 0.0) == [] and asm.rejected["too_large"] == 1


def test_packets_sent_minus_arrived_is_exactly_what_the_channel_dropped():
    """One definition of the wire loss (docs/pipeline.md): packets sent minus packets_arrived. Over a
    lossy, reordering channel it equals the channel's own drop count, whatever became of the packets
    that did arrive (late, stale, redundant, duplicate); packets_missing is the narrower count of
    packets closed frames needed."""
    rng = np.random.default_rng(5)
    asm = assembler()
    sent = dropped = 0
    queue: list[bytes] = []
    for seq in range(1, 41):
        for p in packetize(seq=seq, seed=seq)[3]:
            sent += 1
            if rng.random() < 0.15:
                dropped += 1
            else:
                queue.append(p)
                if rng.random() < 0.05:
                    queue.append(p)  # the channel duplicated it: arrived twice, sent once
                    dropped -= 1
        if seq % 3 == 0:  # deliver in bursts, shuffled: late and stale packets happen
            rng.shuffle(queue)
            feed(asm, queue)
            queue.clear()
    feed(asm, queue)
    s = asm.stats(3)
    assert sent - s.packets_arrived == dropped
    assert 0 < s.packets_missing <= dropped + s.packets_late and s.packets_received <= s.packets_arrived
