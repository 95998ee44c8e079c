import numpy as np
import pytest

from sqgan_core.bitstream import FrameError, read_header
from sqgan_core.codec import Codec


def scene(h, w, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.kron(rng.integers(0, 19, (h // 16 + 1, w // 16 + 1)), np.ones((16, 16), int))[:h, :w].astype(np.uint8)
    lab[:3, :3] = 255
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return img, lab


@pytest.mark.parametrize("h, w", [(64, 128), (50, 70), (17, 33), (256, 512)])
def test_roundtrip_restores_size_and_tokens(small_codec, h, w):
    img, lab = scene(h, w)
    enc = small_codec.encode(img, lab, 0.5, 0.4)
    out = small_codec.decode(enc.data)
    assert out.image.shape == (h, w, 3) and out.image.dtype == np.uint8
    assert out.labels.shape == (h, w) and out.labels.dtype == np.uint8
    assert set(np.unique(out.labels)) <= set(range(19)) | {255}
    # the indices the decoder reads are exactly those the encoder produced
    tokens, _, _ = small_codec.tokens_for(img, lab, 0.5, 0.4)
    frame = small_codec.read(enc.data)
    assert np.array_equal(frame.indices_x, tokens.indices_x[0].numpy())
    assert np.array_equal(frame.indices_s, tokens.indices_s[0].numpy())
    hd = read_header(enc.data)
    assert (hd.height, hd.width) == (h, w)


def test_same_input_same_bytes_across_instances(small_codec):
    img, lab = scene(64, 128, seed=4)
    other = Codec.untrained("small")
    assert other.model_id == small_codec.model_id
    assert small_codec.encode(img, lab, 0.3, 0.6).data == other.encode(img, lab, 0.3, 0.6).data


def test_decoding_is_deterministic(small_codec):
    img, lab = scene(64, 128, seed=5)
    data = small_codec.encode(img, lab, 0.5, 0.5).data
    a, b = small_codec.decode(data), small_codec.decode(data)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)


def test_rate_follows_m_and_stays_under_bound(small_codec):
    img, lab = scene(256, 512, seed=1)
    prev = 0
    for m in (0.05, 0.2, 0.5, 0.8, 1.0):
        s = small_codec.encode(img, lab, m, m).stats
        assert s["bits"] > prev
        prev = s["bits"]
        assert s["payload_bits"] <= s["bound_bits"] + 7
        assert s["bits"] <= s["bound_bits"] + 128


def test_frames_from_other_weights_are_refused(small_codec):
    img, lab = scene(32, 32)
    other = Codec.untrained("small")
    with __import__("torch").no_grad():
        other.model.img_mq.index_prior[0] *= 2  # different prior -> different model id
    other = Codec(other.model)
    assert other.model_id != small_codec.model_id
    with pytest.raises(FrameError, match="encoded by model"):
        small_codec.decode(other.encode(img, lab, 0.5, 0.5).data)


@pytest.mark.parametrize("img, lab, message", [
    (np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), "H x W x 3"),
    (np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.uint8), "uint8"),
    (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 16), np.uint8), "differ in size"),
    (np.zeros((32, 32, 3), np.uint8), np.full((32, 32), 19, np.uint8), "outside trainIds"),
    (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 1), np.uint8), "2-D"),
    (np.zeros((4096, 4096, 3), np.uint8), np.zeros((4096, 4096), np.uint8), "token grid"),
])
def test_bad_inputs_name_the_problem(small_codec, img, lab, message):
    with pytest.raises(ValueError, match=message):
        small_codec.encode(img, lab, 0.5, 0.5)


def test_bad_masking_fraction(small_codec):
    img, lab = scene(32, 32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        small_codec.encode(img, lab, 1.5, 0.5)


def test_a_frame_coded_raw_is_reported_raw(small_codec):
    """When the entropy coder loses to the plain layout, the frame is written raw, and every report
    (frame.stats, encode --json, bench codec) must say so, as `sqgan info` reading the bytes does."""
    import copy

    from sqgan_core.bitstream import MODE_RAW
    from sqgan_core.entropy import IndexPrior, PriorSet

    codec = copy.copy(small_codec)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (64, 128), dtype=np.uint8)
    tokens, ph, pw = codec.tokens_for(img, lab, 1.0, 1.0)
    used = set(tokens.indices_x[0].flatten().tolist()) | set(tokens.indices_s[0].flatten().tolist())
    # a prior that puts almost no mass on the codes this frame uses: entropy coding must lose
    p = np.ones(len(small_codec.prior_x.probabilities), np.float64)
    p[[u for u in used if 0 <= u < len(p)]] = 1e-9
    codec.priors_x = codec.priors_s = PriorSet(IndexPrior(p / p.sum()))  # what the coder reads
    frame = codec.write(tokens, ph, pw)
    assert frame.header.mode == MODE_RAW
    assert frame.stats["mode"] == "raw"
