import numpy as np
import pytest
import torch

from sqgan_core.bitstream import MASKED
from sqgan_core.models.concealer import ConcealerConfig, build_concealer
from sqgan_core.streaming.assembler import FrameAssembler
from sqgan_core.streaming.concealment import (ConcealerError, NoModelConcealer, TransformerConcealer, model_input,
                                              save_concealer, select_concealer)
from sqgan_core.streaming.loss import drop_packets, LossSpec
from sqgan_core.streaming.stream import StreamDecoder, StreamEncoder


def _tiny(kind="bidirectional", j=1024):
    torch.manual_seed(0)
    return {"image": build_concealer(ConcealerConfig(kind=kind, num_codes=j, dim=16, depth=1, heads=2,
                                                     condition_channels=20, window=8)),
            "semantic": build_concealer(ConcealerConfig(kind=kind, num_codes=j, dim=16, depth=1, heads=2, window=8))}


def _lossy_frame(codec, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (64, 128)).astype(np.uint8)
    enc = StreamEncoder(codec, 1, m_x=0.6, m_s=0.6, max_packet_bytes=128, first_seq=0).encode(img, lab)
    for trial in range(100):
        survivors, _ = drop_packets(enc.packets, LossSpec("bernoulli", 0.4).model(), np.random.default_rng([seed, trial]))
        asm = FrameAssembler(codec.prior_x, codec.prior_s, codec.model_id, frame_timeout=0.05)
        frames = [f for p in survivors for f in asm.push(p, 0.0)] + asm.poll(1.0)
        if frames and frames[0].lost_x.any() and frames[0].lost_s.any():
            return frames[0]
    raise AssertionError("no frame with lost tokens in both streams")


def test_model_input_keeps_samm_masked_and_lost_apart():
    ids = model_input(np.array([5, MASKED, 7, 9]), np.array([False, False, True, False]), 1024)
    assert ids.tolist() == [5, 1024, 1025, 9]


@pytest.mark.parametrize("kind", ["bidirectional", "autoregressive"])
def test_transformer_predicts_lost_tokens_only(small_codec, tmp_path, kind):
    frame = _lossy_frame(small_codec)
    path = tmp_path / "c.pt"
    save_concealer(path, _tiny(kind), small_codec.model_id, {"steps": 1})
    hist = torch.full((frame.indices_x.size, 20), 0.05)
    c = TransformerConcealer.load(path, mode="hard")
    assert c.kind == kind and c.metadata["steps"] == 1
    s, x = c.semantic(frame), c.image(frame, hist)
    for out, idx, lost in ((x.indices, frame.indices_x, frame.lost_x), (s.indices, frame.indices_s, frame.lost_s)):
        assert np.array_equal(out[~lost], idx[~lost])  # received and SAMM-masked positions untouched
        assert (out[lost] >= 0).all() and (out[lost] < 1024).all()  # every lost one predicted
    assert c.stats.tokens_predicted == frame.tokens_lost and c.stats.tokens_left_masked == 0
    strict = TransformerConcealer.load(path, mode="hard", threshold=1.0)  # nothing is that sure: all to the ADM
    assert (strict.semantic(frame).indices[frame.lost_s] == MASKED).all()
    assert strict.stats.tokens_left_masked == int(frame.lost_s.sum())
    soft = TransformerConcealer.load(path)  # default: expected code vectors the ADM reads as received
    s = soft.semantic(frame)
    assert np.array_equal(s.indices, frame.indices_s)  # indices stay as received
    assert np.array_equal(s.positions, np.flatnonzero(frame.lost_s)) and s.as_kept
    assert torch.allclose(s.probs.sum(-1), torch.ones(len(s.positions)), atol=1e-4)
    gated = TransformerConcealer.load(path, threshold=1.01)  # soft with a threshold: unsure tokens go to the ADM
    g = gated.semantic(frame)
    assert g.positions is None and np.array_equal(g.indices, frame.indices_s)
    assert gated.stats.tokens_left_masked == int(frame.lost_s.sum()) and gated.stats.tokens_predicted == 0
    codes = small_codec.soft_codes("semantic", s)
    assert codes.vectors.shape == (len(s.positions), small_codec.model.sem_mq.vq.embedding.shape[1])


def test_decoder_runs_the_concealer_between_the_streams(small_codec, tmp_path):
    frame = _lossy_frame(small_codec, seed=1)
    path = tmp_path / "c.pt"
    save_concealer(path, _tiny(), small_codec.model_id)
    sel = select_concealer("bidirectional", path, small_codec.model_id)
    assert not sel.fallback_reason
    out = StreamDecoder(small_codec, sel.concealer).decode(frame)
    base = StreamDecoder(small_codec).decode(frame)
    assert out.image.shape == base.image.shape == (64, 128, 3)
    assert not np.array_equal(out.image, base.image)  # the expected code vectors changed what the ADM filled
    hard = select_concealer("bidirectional", path, small_codec.model_id, mode="hard").concealer
    assert StreamDecoder(small_codec, hard).decode(frame).image.shape == (64, 128, 3)
    assert out.extras["concealment"] == "bidirectional" and base.extras["concealment"] == "none"
    assert sel.concealer.stats.frames == 1 and sel.concealer.stats.tokens_lost == frame.tokens_lost


def test_selection_falls_back_to_the_baseline_with_the_reason(small_codec, tmp_path):
    path = tmp_path / "c.pt"
    save_concealer(path, _tiny(), small_codec.model_id + 1)
    sel = select_concealer("auto", path, small_codec.model_id)
    assert isinstance(sel.concealer, NoModelConcealer) and "trained for codec model id" in sel.fallback_reason
    sel = select_concealer("bidirectional", tmp_path / "missing.pt", small_codec.model_id)
    assert isinstance(sel.concealer, NoModelConcealer) and "no such file" in sel.fallback_reason
    save_concealer(path, _tiny("autoregressive"), small_codec.model_id)
    sel = select_concealer("bidirectional", path, small_codec.model_id)
    assert isinstance(sel.concealer, NoModelConcealer) and "autoregressive" in sel.fallback_reason
    assert select_concealer("none", None, 0).fallback_reason == ""
    with pytest.raises(ValueError, match="concealment"):
        select_concealer("magic", None, 0)


def test_a_file_that_is_not_a_concealer_is_refused_clearly(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConcealerError, match="not a loadable checkpoint"):
        TransformerConcealer.load(junk)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ConcealerError, match="not a concealer checkpoint"):
        TransformerConcealer.load(tmp_path / "other.pt")
    torch.save({"format": "sqgan-concealer", "version": 1, "codec_model_id": 1}, tmp_path / "half.pt")
    with pytest.raises(ConcealerError, match="missing"):
        TransformerConcealer.load(tmp_path / "half.pt")


def test_autoregressive_logits_never_read_the_future():
    torch.manual_seed(0)
    m = build_concealer(ConcealerConfig(kind="autoregressive", num_codes=64, dim=16, depth=2, heads=2)).eval()
    ids = torch.randint(0, 64, (1, 12))
    rows, cols = torch.zeros(1, 12, dtype=torch.long), torch.arange(12)[None]
    a = m.logits(ids, rows, cols)
    later = ids.clone()
    later[0, 6:] = torch.randint(0, 64, (6,))
    b = m.logits(later, rows, cols)
    assert torch.allclose(a[0, :7], b[0, :7], atol=1e-5)  # position t predicts ids[t] from ids[<t] only
    assert not torch.allclose(a[0, 7:], b[0, 7:])
