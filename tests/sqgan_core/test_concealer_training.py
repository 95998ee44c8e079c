"""`sqgan train concealer` and `sqgan eval --loss` end to end, on a tiny dataset and the untrained codec."""
import json

import numpy as np
import pytest

from sqgan_core.checkpoint import save_checkpoint
from sqgan_core.cli import main
from sqgan_core.codec import Codec
from sqgan_core.imageio import write_labels, write_rgb
from sqgan_core.streaming.concealment import TransformerConcealer
from sqgan_core.training.concealer import ConcealerRun, LossDraws, extract_token_maps, train_concealers


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, small_codec):
    root = tmp_path_factory.mktemp("conc")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for i in range(n):
            lab = np.full((64, 128), 0, np.uint8)
            lab[:20] = 10
            lab[30:40, 10 + 8 * i:30 + 8 * i] = 13
            img = (np.stack([lab * 20, lab * 9, 255 - lab * 11], -1) + rng.integers(0, 25, (64, 128, 3))).astype(np.uint8)
            write_rgb(root / "leftImg8bit" / split / "c" / f"c_{i:06d}_000000_leftImg8bit.png", img)
            write_labels(root / "gtFine" / split / "c" / f"c_{i:06d}_000000_gtFine_labelTrainIds.png", lab)
    model = root / "codec.pt"
    save_checkpoint(model, small_codec.model, {"untrained": True})
    return root, model


def test_loss_draws_lose_tokens_the_way_the_pipeline_does(small_codec):
    rng = np.random.default_rng(1)
    frames = [(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8), rng.integers(0, 19, (64, 128)).astype(np.uint8))
              for _ in range(2)]
    maps = extract_token_maps(small_codec, frames)
    assert maps.grid == (4, 8) and maps.idx_x.shape == (2, 32) and maps.hist.shape == (2, 32, 20)
    assert np.allclose(maps.hist.astype(np.float32).sum(-1), 1.0, atol=1e-2)
    draws = LossDraws(maps, small_codec, seed=0)
    for _ in range(20):
        d = draws.draw(0)
        for idx, lost in ((d["ix"], d["lost_x"]), (d["is"], d["lost_s"])):
            assert not (lost & (idx < 0)).any()  # only sent tokens are ever lost
        assert d["lost_x"].any() or d["lost_s"].any()  # every draw loses at least one index packet


@pytest.mark.parametrize("kind", ["bidirectional", "autoregressive"])
def test_training_lowers_the_validation_loss_and_writes_a_bound_concealer(small_codec, tmp_path, kind):
    rng = np.random.default_rng(2)
    base = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    frames = [(base, np.zeros((64, 128), np.uint8))] * 4  # one scene: its tokens are learnable in a few steps
    maps = extract_token_maps(small_codec, frames)
    run = ConcealerRun(kind=kind, batch_size=4, lr=3e-3, warmup=2, steps=40, val_every=20, val_batches=2,
                       dim=32, depth=1, heads=2, window=8)
    s = train_concealers(small_codec, maps, maps, tmp_path, run, log=lambda _: None)
    assert s["val_ce"] < s["first"]["val_ce"]
    c = TransformerConcealer.load(tmp_path / f"concealer_{kind}.pt")
    assert c.codec_model_id == small_codec.model_id and c.kind == kind and c.metadata["best_step"] == s["best_step"]


def test_train_concealer_command_and_warm_start(tiny, tmp_path, capsys):
    root, model = tiny
    args = ["train", "concealer", "--data", str(root), "--out", str(tmp_path / "c"), "--model", str(model),
            "--steps", "3", "--val-every", "2", "--batch-size", "2", "--dim", "16", "--depth", "1", "--heads", "2"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["steps"] == 3 and first["init"] == "fresh"
    assert list((tmp_path / "c").glob("tokens_train_*.npz"))  # token maps cached for the next run
    assert main(args + ["--init", str(tmp_path / "c" / "concealer_bidirectional.pt")]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["init"].endswith("concealer_bidirectional.pt")


def test_token_maps_cache_is_shared_by_runs_and_keyed_by_the_frames(tiny, tmp_path, capsys):
    root, model = tiny
    base = ["train", "concealer", "--data", str(root), "--model", str(model), "--cache", str(tmp_path / "maps"),
            "--steps", "1", "--val-every", "1", "--batch-size", "2", "--dim", "16", "--depth", "1", "--heads", "2"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    first = sorted((tmp_path / "maps").glob("tokens_train_*.npz"))
    assert len(first) == 1 and not list((tmp_path / "a").glob("tokens_*"))
    stamp = first[0].stat().st_mtime_ns
    assert main(base + ["--out", str(tmp_path / "b")]) == 0  # another run, same frames: the cache is read
    assert first[0].stat().st_mtime_ns == stamp
    assert main(base + ["--out", str(tmp_path / "c"), "--frames", "2"]) == 0  # other frames: extracted anew
    assert len(list((tmp_path / "maps").glob("tokens_train_*.npz"))) == 2
    capsys.readouterr()


def test_eval_loss_reports_every_method_on_the_same_frames(tiny, tmp_path, capsys):
    root, model = tiny
    codec = Codec.from_checkpoint(model)
    assert main(["train", "concealer", "--data", str(root), "--out", str(tmp_path / "c"), "--model", str(model),
                 "--steps", "2", "--val-every", "2", "--batch-size", "2", "--dim", "16", "--depth", "1",
                 "--heads", "2"]) == 0
    capsys.readouterr()
    out = tmp_path / "loss.json"
    assert main(["eval", "--model", str(model), "--data", str(root), "--split", "val", "--frames", "3",
                 "--segmenter", "none", "--loss", "bernoulli:0.3", "--loss", "gilbert:0.2,4", "--packet-bytes", "128",
                 "--concealment", "none,bidirectional,autoregressive",
                 "--concealer", f"bidirectional={tmp_path / 'c' / 'concealer_bidirectional.pt'}",
                 "-o", str(out), "--plot", str(tmp_path / "loss.png"), "--json"]) == 0
    r = json.loads(out.read_text())
    assert r["model_id"] == f"{codec.model_id:04x}" and r["methods"] == ["none", "bidirectional"]
    assert "autoregressive" in r["left_out"]  # no shipped autoregressive concealer for these weights: said why
    [row] = r["grid"]
    assert (row["mx"], row["ms"]) == (0.5, 0.5) and row["lossless"]["miou_shat"] is not None
    for loss in row["losses"]:
        assert set(loss["methods"]) == {"none", "bidirectional"} and loss["frames"] == 3
        assert loss["packets_lost_share"] > 0
    assert {t["loss"] for t in r["acceptance"]["targets"]} == {"gilbert:0.2,4"}
    assert (tmp_path / "loss.png").stat().st_size > 1000
