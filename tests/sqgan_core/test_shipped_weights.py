"""The shipped defaults every command and node loads when given no model: a trained `small` SQ-GAN
with fitted index priors and the Fast-SCNN segmenter, both small enough to commit and loadable
with weights_only."""
import numpy as np
import pytest
import torch

from sqgan_core.checkpoint import DEFAULT_CHECKPOINT, default_checkpoint, load_checkpoint
from sqgan_core.codec import Codec

MAX_BYTES = 30 * 1024 * 1024


def test_the_trained_small_model_ships_with_its_priors():
    assert default_checkpoint() == DEFAULT_CHECKPOINT, "sqgan_core/weights/sqgan_small.pt is missing"
    assert DEFAULT_CHECKPOINT.stat().st_size <= MAX_BYTES
    torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)  # no pickled code inside
    model, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    assert model.config.name == "small"
    assert meta["stage"] in ("finetune", "joint") and meta["step"] > 0 and not meta.get("untrained")
    assert meta["priors"]["used_codes_x"] > 1 and meta["priors"]["used_codes_s"] > 1
    # the priors are fitted, not uniform: the coder spends fewer bits than log2(J) per index
    prior = model.img_mq.index_prior.numpy()
    assert prior.std() > 0 and meta["priors"]["bits_per_index_x"] < np.log2(prior.size)


def test_the_shipped_model_beats_untrained_weights_on_a_held_out_frame():
    from sim import make_source

    with make_source("default", seed=9001) as src:  # an evaluation seed: never seen in training
        frame = src.step()
    trained, untrained = Codec.from_checkpoint(DEFAULT_CHECKPOINT), Codec.untrained("small")
    from sqgan_core.metrics import confusion, miou_from_confusion, psnr

    def quality(codec):
        dec = codec.decode(codec.encode(frame.rgb, frame.labels, 0.5, 0.5).data)
        return psnr(frame.rgb, dec.image), miou_from_confusion(confusion(dec.labels, frame.labels))

    (p_t, m_t), (p_u, m_u) = quality(trained), quality(untrained)
    assert p_t > p_u + 3 and m_t > m_u + 0.1, (p_t, m_t, p_u, m_u)


def test_the_segmenter_ships_and_loads_through_mmseg():
    from sqgan_core.segmentation.segmenter import WEIGHTS, Segmenter

    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size <= MAX_BYTES
    torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    seg = Segmenter.load()
    assert seg.metadata["iters"] > 0
    pred = seg(np.zeros((100, 150, 3), np.uint8))  # odd size: native resolution in, same size out
    assert pred.shape == (100, 150) and pred.dtype == np.uint8 and pred.max() < 19

