import math

import pytest
import torch

from sqgan_core.checkpoint import build_untrained
from sqgan_core.config import parse_config
from sqgan_core.labels import VOID
from sqgan_core.models import SQGAN
from sqgan_core.models.masking import ADM, keep_count
from sqgan_core.models.quantizer import VectorQuantizerEMA

TINY = {"name": "tiny", "network": {"ch": 8, "ch_mult": [1, 1, 2, 2, 2], "num_res_blocks": 1, "z_channels": 16,
                                    "codebook_size": 64, "spade_hidden": 8, "adm_depth": 2, "adm_heads": 2}}


@pytest.fixture(scope="module")
def tiny() -> SQGAN:
    torch.manual_seed(0)
    return SQGAN(parse_config(TINY)).eval()


def _inputs(h, w, b=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    lab = torch.randint(0, 19, (b, h, w), generator=g)
    lab[:, :4, :4] = VOID
    return x, lab


@pytest.mark.parametrize("h, w", [(16, 16), (64, 128), (96, 80), (256, 512)])
def test_shapes_follow_any_multiple_of_16(tiny, h, w):
    x, lab = _inputs(h, w)
    tokens = tiny.encode(x, lab, 0.5, 0.5)
    k = (h // 16) * (w // 16)
    assert tokens.grid == (h // 16, w // 16)
    assert tokens.indices_x.shape == tokens.indices_s.shape == (1, k)
    x_hat, s_idx = tiny.decode(tokens)
    assert x_hat.shape == (1, 3, h, w) and s_idx.shape == (1, h, w)
    assert x_hat.min() >= -1 and x_hat.max() <= 1
    assert s_idx.min() >= 0 and s_idx.max() <= 19


def test_sizes_not_multiple_of_16_are_refused(tiny):
    x, lab = _inputs(40, 64)
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny.encode(x, lab, 0.5, 0.5)


@pytest.mark.parametrize("m, k, n", [(0.5, 512, 256), (0.29, 100, 29), (0.1, 512, 51), (1.0, 512, 512),
                                     (0.0, 512, 0), (0.999, 512, 511), (0.35, 20, 7)])
def test_keep_count_is_floor_of_m_times_k(m, k, n):
    assert keep_count(m, k) == n


@pytest.mark.parametrize("m", [-0.1, 1.01, float("nan")])
def test_keep_count_rejects_out_of_range(m):
    with pytest.raises(ValueError):
        keep_count(m, 10)


@pytest.mark.parametrize("mx, ms", [(0.0, 1.0), (0.2, 0.55), (1.0, 0.0), (0.5, 0.5)])
def test_number_of_kept_tokens_is_exact(tiny, mx, ms):
    x, lab = _inputs(64, 128)
    t = tiny.encode(x, lab, mx, ms)
    k = 4 * 8
    assert int(t.keep_x.sum()) == math.floor(mx * k) and int(t.keep_s.sum()) == math.floor(ms * k)
    assert ((t.indices_x >= 0) == t.keep_x).all()


def test_m_equal_one_keeps_every_token(tiny):
    x, lab = _inputs(32, 64)
    t = tiny.encode(x, lab, 1.0, 1.0)
    assert t.keep_x.all() and t.keep_s.all()


def test_encode_is_deterministic_and_masks_are_nested(tiny):
    x, lab = _inputs(64, 128)
    a, b = tiny.encode(x, lab, 0.3, 0.3), tiny.encode(x, lab, 0.3, 0.3)
    assert torch.equal(a.indices_x, b.indices_x) and torch.equal(a.indices_s, b.indices_s)
    # Top-N by the same scores: the tokens kept at a lower rate are a subset of those at a higher one.
    hi = tiny.encode(x, lab, 0.6, 0.6)
    assert (hi.keep_x | ~a.keep_x).all() and (hi.keep_s | ~a.keep_s).all()


def test_batch_items_are_independent(tiny):
    x, lab = _inputs(32, 64, b=2)
    both = tiny.encode(x, lab, 0.5, 0.5)
    one = tiny.encode(x[1:], lab[1:], 0.5, 0.5)
    assert torch.equal(both.indices_x[1:], one.indices_x)


def test_samm_scale_gives_the_scorer_a_gradient():
    torch.manual_seed(0)
    model = SQGAN(parse_config(TINY)).train()
    x, lab = _inputs(32, 64)
    seg = model.one_hot(lab)
    z_x, _ = model.encode_latents(x, seg)
    out = model.img_mq.select(z_x, seg, 0.5)
    recon = model.decode_image(model.img_mq.adm(out.grid, out.keep), seg)
    (recon.pow(2).mean() + out.quant.commit_loss).backward()
    grads = [p.grad for p in model.img_mq.samm.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert model.img_mq.placeholder.grad is not None and model.img_mq.placeholder.grad.abs().sum() > 0


def test_vq_ema_moves_codes_and_restarts_dead_ones():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(16, 4, decay=0.5, dead_threshold=0.05).train()
    tokens = torch.randn(2, 8, 4) + 5.0  # far from the initial codes
    keep = torch.ones(2, 8, dtype=torch.bool)
    before = vq.embedding.clone()
    for _ in range(10):
        out = vq(tokens, keep)
    assert not torch.equal(before, vq.embedding)
    # every code that was never chosen has been restarted onto an encoder output (near +5)
    assert (vq.embedding.mean(1) > 2.0).all()
    assert out.commit_loss.item() >= 0 and 1.0 <= out.perplexity.item() <= 16


def test_vq_eval_does_not_touch_the_codebook():
    vq = VectorQuantizerEMA(16, 4).eval()
    before = vq.embedding.clone()
    vq(torch.randn(1, 8, 4), torch.ones(1, 8, dtype=torch.bool))
    assert torch.equal(before, vq.embedding)


def test_vq_under_bf16_autocast_quantizes_in_float32():
    # GPU training runs under bf16 autocast; the quantizer must still pick the float32 nearest codes
    # (and not fail on mixed dtypes when writing kept tokens). CPU autocast exercises the same path.
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(64, 8).eval()
    tokens = torch.randn(2, 16, 8)
    keep = torch.rand(2, 16) < 0.5
    t16 = tokens.to(torch.bfloat16)  # what an encoder under autocast hands over
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(t16, keep)
    assert out.quantized.dtype == torch.float32
    assert torch.equal(out.indices, vq(t16.float(), keep).indices)


def test_adm_masked_key_weights_start_small_and_grow_as_sqrt():
    adm = ADM(16, depth=4, heads=2)
    w = adm.log_weights.exp().tolist()
    assert w[0] == pytest.approx(0.02)
    for a, b in zip(w, w[1:]):
        assert b == pytest.approx(math.sqrt(a))


def test_adm_fills_holes_from_kept_tokens(tiny):
    """Changing a kept code changes the reconstruction at dropped positions (information flows)."""
    x, lab = _inputs(64, 128)
    t = tiny.encode(x, lab, 0.25, 0.25)
    z1, _ = tiny.demask(t)
    alt = t.indices_x.clone()
    kept = alt[0] >= 0
    alt[0, kept] = (alt[0, kept] + 1) % 64
    from sqgan_core.models.sqgan import Tokens
    z2, _ = tiny.demask(Tokens(alt, t.indices_s, t.grid))
    dropped = (~kept).reshape(t.grid)
    assert (z1 - z2).abs()[0, :, dropped].sum() > 0


def test_decode_rejects_out_of_range_indices(tiny):
    from sqgan_core.models.sqgan import Tokens
    bad = torch.full((1, 8), 64)
    with pytest.raises(ValueError, match="outside"):
        tiny.decode(Tokens(bad, torch.zeros(1, 8, dtype=torch.long), (2, 4)))


def test_untrained_models_are_reproducible():
    a, b = build_untrained("small"), build_untrained("small")
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(ta, tb)


@pytest.mark.slow
def test_paper_config_builds_and_runs_at_256x512():
    model = build_untrained("paper").eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 100e6  # ch 128 trunk, 256-d codes: the published scale
    x, lab = _inputs(256, 512)
    t = model.encode(x, lab, 0.5, 0.5)
    assert t.indices_x.shape == (1, 512)
