import numpy as np
import pytest

from sqgan_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sqgan_core.cli import main
from sqgan_core.codebooks import KEY, reduce_codebooks, weighted_kmeans
from sqgan_core.codec import Codec
from sqgan_core.streaming.assembler import FrameAssembler
from sqgan_core.streaming.stream import StreamDecoder, StreamEncoder


def _image(seed=0, h=64, w=128):
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    lab[h // 2:] = 0
    lab[: h // 2] = 10
    img = (np.stack([lab * 20, lab * 7, 255 - lab * 9], -1) + rng.integers(0, 30, (h, w, 3))).astype(np.uint8)
    return img, lab


@pytest.fixture(scope="module")
def reduced_codec(small_codec, tmp_path_factory):
    """The untrained small model with its codebooks reduced (stored in the checkpoint, as shipped)."""
    path = tmp_path_factory.mktemp("red") / "m.pt"
    save_checkpoint(path, small_codec.model, {"untrained": True})
    assert main(["train", "codebooks", "--model", str(path), "--sizes", "256,64", "-o", str(path)]) == 0
    return Codec.from_checkpoint(path)


def test_weighted_kmeans_gives_heavy_points_their_own_cluster():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 0.01, (50, 2)), rng.normal(5, 0.01, (50, 2)), [[100.0, 100.0]]]
    w = np.r_[np.ones(100), [1000.0]]
    c, labels = weighted_kmeans(x, w, 3)
    assert len(set(labels[:50])) == 1 and len(set(labels[50:100])) == 1
    assert labels[100] not in (labels[0], labels[50])
    assert np.allclose(c[labels[100]], [100, 100])


def test_reduction_keeps_the_model_id_and_codes_at_a_lower_rate(small_codec, reduced_codec):
    assert reduced_codec.model_id == small_codec.model_id  # the weights did not change
    assert reduced_codec.codebook_sizes() == ([64, 256, 1024], [64, 256, 1024])
    img, lab = _image()
    full = reduced_codec.encode(img, lab, 1.0, 1.0)
    small = reduced_codec.encode(img, lab, 1.0, 1.0, (64, 64))
    assert (small.header.log2_jx, small.header.log2_js) == (6, 6)
    assert small.stats["bound_bpp"] < full.stats["bound_bpp"]
    dec = reduced_codec.decode(small.data)
    assert dec.image.shape == img.shape
    # a receiver without the reductions refuses such a frame by name, not with a crash
    with pytest.raises(Exception, match="codebooks 2\\^6/2\\^6"):
        small_codec.decode(small.data)
    with pytest.raises(ValueError, match="image codebook of 32 codes"):
        reduced_codec.encode(img, lab, 0.5, 0.5, (32, 32))


def test_reduced_frames_cross_the_packet_path(reduced_codec, small_codec):
    img, lab = _image(1)
    enc = StreamEncoder(reduced_codec, 3, m_x=0.5, m_s=0.5, first_seq=0)
    enc.set_rates(0.5, 0.5, (256, 64))
    out = enc.encode(img, lab)
    asm = FrameAssembler(reduced_codec.priors_x, reduced_codec.priors_s, reduced_codec.model_id)
    [frame] = [f for p in out.packets for f in asm.push(p, 0.0)]
    assert (frame.header.log2_jx, frame.header.log2_js) == (8, 6) and frame.complete
    direct = reduced_codec.decode(reduced_codec.encode(img, lab, 0.5, 0.5, (256, 64)).data)
    assert np.array_equal(StreamDecoder(reduced_codec).decode(frame).image, direct.image)
    # the plain model's assembler counts the frame as an unknown codebook instead of decoding garbage
    plain = FrameAssembler(small_codec.priors_x, small_codec.priors_s, small_codec.model_id)
    assert not [f for p in out.packets for f in plain.push(p, 0.0)]
    assert plain.rejected["unknown_codebook"] >= 1
    with pytest.raises(ValueError, match="J_x = 128"):
        enc.set_rates(0.5, 0.5, (128, 64))


def test_malformed_reductions_are_a_checkpoint_error(small_codec, tmp_path):
    red = reduce_codebooks(small_codec.model, (64,))
    red["image"]["64"]["labels"] = red["image"]["64"]["labels"][:10]
    path = tmp_path / "bad.pt"
    save_checkpoint(path, small_codec.model, {KEY: red})
    with pytest.raises(CheckpointError, match="do not fit"):
        Codec.from_checkpoint(path)
    _, meta = load_checkpoint(path)
    assert KEY in meta
