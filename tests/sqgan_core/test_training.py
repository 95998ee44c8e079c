"""Training machinery on tiny models and frames: every stage runs, resumes, logs, checkpoints; the
augmentation keeps labels valid; priors cut bits; DDP works on CPU with gloo and 2 processes."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sqgan_core.checkpoint import load_checkpoint
from sqgan_core.cli import main
from sqgan_core.codec import Codec
from sqgan_core.imageio import write_labels, write_rgb
from sqgan_core.labels import VOID, class_id
from sqgan_core.training.augment import RELEVANT, colour_jitter, copy_paste, geometric, sample_keep_fraction, AugmentConfig
from sqgan_core.training.losses import class_weight_table, relevance_reinjection, weighted_cross_entropy

TINY_MODEL = {"name": "tiny", "network": {"ch": 8, "ch_mult": [1, 1, 2, 2, 2], "num_res_blocks": 1,
                                          "z_channels": 16, "codebook_size": 64, "spade_hidden": 8,
                                          "adm_depth": 1, "adm_heads": 2}}
TINY_TRAIN = {"batch_size": 2, "crop": [32, 64], "steps": 4, "disc_start": 2, "val_every": 2, "val_frames": 2,
              "ckpt_every": 2, "max_paste": 3}


def _scene(rng, h=64, w=128):
    lab = np.full((h, w), class_id("road"), np.uint8)
    lab[: h // 3] = class_id("sky")
    lab[h // 3: h // 2, : w // 2] = class_id("building")
    y, x = rng.integers(h // 3, h - 8), rng.integers(0, w - 8)
    lab[y:y + 6, x:x + 4] = class_id("traffic light")
    lab[h - 10: h - 2, 10:20] = class_id("car")
    img = (np.stack([lab * 9 % 255, lab * 37 % 255, lab * 71 % 255], -1) + rng.integers(0, 20, (h, w, 3))).astype(np.uint8)
    return img, lab


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for i in range(n):
            img, lab = _scene(rng)
            write_rgb(root / "leftImg8bit" / split / "t" / f"t_{i:06d}_000000_leftImg8bit.png", img)
            write_labels(root / "gtFine" / split / "t" / f"t_{i:06d}_000000_gtFine_labelTrainIds.png", lab)
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY_MODEL))
    (root / "train.yaml").write_text(yaml.safe_dump(TINY_TRAIN))
    return root


def _train(dataset, stage, out, *extra):
    return main(["train", stage, "--data", str(dataset), "--out", str(out), "--config", str(dataset / "tiny.yaml"),
                 "--train-config", str(dataset / "train.yaml"), *map(str, extra)])


def test_three_stages_priors_and_resume(dataset, tmp_path, capsys):
    assert _train(dataset, "semantic", tmp_path / "s1") == 0
    _, meta = load_checkpoint(tmp_path / "s1" / "model.pt")
    assert meta["stage"] == "semantic" and meta["step"] == 4 and "last_val_miou_shat_m0.5" in meta
    rows = list(csv.DictReader((tmp_path / "s1" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and float(rows[-1]["d"]) != 0.0  # GAN on from step 2
    # resume: continue to 6 steps, the log grows instead of restarting
    assert _train(dataset, "semantic", tmp_path / "s1", "--resume", "--steps", "6") == 0
    rows = list(csv.DictReader((tmp_path / "s1" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]

    assert _train(dataset, "image", tmp_path / "s2", "--init", tmp_path / "s1" / "model.pt") == 0
    m2, meta2 = load_checkpoint(tmp_path / "s2" / "model.pt")
    assert meta2["perceptual"]["kind"] in ("substitute", "lpips")
    if meta2["perceptual"]["kind"] == "substitute":
        assert "substitute" in meta2["perceptual"]["detail"]
    m1, _ = load_checkpoint(tmp_path / "s1" / "model.pt")
    # stage 2 leaves the semantic pipeline untouched
    for k, v in m1.state_dict().items():
        if k.startswith("sem_"):
            assert torch.equal(v, m2.state_dict()[k]), k

    capsys.readouterr()
    assert _train(dataset, "finetune", tmp_path / "s3", "--init", tmp_path / "s2" / "model.pt") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["stage"] == "finetune" and "bits_per_index_x" in result
    m3, meta3 = load_checkpoint(tmp_path / "s3" / "model.pt")
    assert meta3["priors"]["used_codes_x"] >= 1
    assert not torch.allclose(m3.img_mq.index_prior, torch.full_like(m3.img_mq.index_prior, 1 / 64))
    # the result is a working codec
    codec = Codec.from_checkpoint(tmp_path / "s3" / "model.pt")
    img, lab = _scene(np.random.default_rng(5))
    out = codec.decode(codec.encode(img, lab, 0.5, 0.5).data)
    assert out.image.shape == img.shape


def test_finetune_takes_the_semantic_pipeline_from_another_run(dataset, tmp_path, capsys):
    """Stage 2 can run beside stage 1 (initialised from an early G_s); stage 3 joins the final G_s in."""
    from sqgan_core.checkpoint import save_checkpoint
    from sqgan_core.config import parse_config
    from sqgan_core.models import SQGAN
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "early.pt", SQGAN(parse_config(TINY_MODEL)))
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "final_sem.pt", SQGAN(parse_config(TINY_MODEL)))
    assert _train(dataset, "finetune", tmp_path / "s3", "--init", tmp_path / "early.pt",
                  "--semantic-from", tmp_path / "final_sem.pt", "--steps", "2") == 0
    m3, meta = load_checkpoint(tmp_path / "s3" / "model.pt")
    sem, _ = load_checkpoint(tmp_path / "final_sem.pt")
    early, _ = load_checkpoint(tmp_path / "early.pt")
    for k, v in sem.state_dict().items():
        if k.startswith(("sem_conv_in.", "sem_encoder.", "sem_decoder.")):
            assert torch.equal(v, m3.state_dict()[k]), k  # frozen and taken from --semantic-from
    assert not torch.equal(early.sem_conv_in.weight, m3.sem_conv_in.weight)
    assert meta["semantic_from"]["path"] == str(tmp_path / "final_sem.pt")
    # a checkpoint of another architecture is refused with a message, not a shape crash
    other = dict(TINY_MODEL, network=dict(TINY_MODEL["network"], z_channels=8))
    save_checkpoint(tmp_path / "other.pt", SQGAN(parse_config(other)))
    capsys.readouterr()
    assert _train(dataset, "finetune", tmp_path / "s3b", "--init", tmp_path / "early.pt",
                  "--semantic-from", tmp_path / "other.pt", "--steps", "1") == 2
    assert "config" in capsys.readouterr().err


def test_resume_takes_learning_rate_and_disc_width_from_the_yaml(dataset, tmp_path):
    cfg = dict(TINY_TRAIN, disc_width=8, warmup_steps=0, lr_min_ratio=1.0)  # a constant schedule
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(dict(cfg, lr=5e-5, steps=6)))
    base = ["train", "semantic", "--data", str(dataset), "--out", str(tmp_path / "run"), "--config",
            str(dataset / "tiny.yaml")]
    assert main(base + ["--train-config", str(tmp_path / "a.yaml")]) == 0
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert state["disc"]["blocks.0.0.weight"].shape[0] == 8
    assert state["opt"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert main(base + ["--train-config", str(tmp_path / "b.yaml"), "--resume"]) == 0
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert state["step"] == 6 and state["opt"]["param_groups"][0]["lr"] == pytest.approx(5e-5)


def test_finetune_needs_an_init_but_stage_two_can_start_fresh(dataset, tmp_path, capsys):
    assert _train(dataset, "finetune", tmp_path / "x") == 2
    assert "--init" in capsys.readouterr().err
    # Stage 2 trains on the true map, so it runs beside stage 1 without waiting for it.
    assert _train(dataset, "image", tmp_path / "y") == 0
    assert load_checkpoint(tmp_path / "y" / "model.pt")[1]["stage"] == "image"


def test_batches_are_the_same_with_worker_processes_and_after_a_restore(dataset):
    from sqgan_core.data import CityscapesPairs
    from sqgan_core.training.augment import AugmentConfig
    from sqgan_core.training.data import BatchStream

    pairs = CityscapesPairs(dataset, "train").pairs
    make = lambda workers: BatchStream(pairs, 2, (32, 64), seed=3, augment=AugmentConfig(max_paste=3),
                                       workers=workers)
    serial = [b for _, b in zip(range(5), make(0))]
    parallel = [b for _, b in zip(range(5), make(2))]
    for (xa, ya), (xb, yb) in zip(serial, parallel):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    resumed = make(0)
    resumed.restore({"batches": 3})
    assert torch.equal(next(resumed)[0], serial[3][0])
    assert not torch.equal(serial[0][0], serial[1][0])


def test_max_minutes_stops_early_with_a_checkpoint(dataset, tmp_path, capsys):
    assert _train(dataset, "semantic", tmp_path / "t", "--steps", "1000", "--max-minutes", "0.0001") == 0
    _, meta = load_checkpoint(tmp_path / "t" / "model.pt")
    assert meta["step"] == 1 and "last_val_miou_shat_m0.5" in meta
    assert "time limit" in capsys.readouterr().out


def test_fitted_priors_cut_bits(dataset, tmp_path):
    from sqgan_core.checkpoint import build_untrained, save_checkpoint
    from sqgan_core.config import parse_config
    from sqgan_core.models import SQGAN
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", SQGAN(parse_config(TINY_MODEL)))
    assert main(["train", "priors", "--model", str(tmp_path / "m.pt"), "--data", str(dataset),
                 "-o", str(tmp_path / "p.pt")]) == 0
    img, lab = _scene(np.random.default_rng(1))
    before = Codec.from_checkpoint(tmp_path / "m.pt").encode(img, lab, 0.5, 0.5).stats["bits"]
    after = Codec.from_checkpoint(tmp_path / "p.pt").encode(img, lab, 0.5, 0.5).stats["bits"]
    assert after < before


def test_copy_paste_adds_lights_without_covering_relevant_objects():
    rng = np.random.default_rng(0)
    imgs, labs = zip(*[_scene(rng) for _ in range(4)])
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(np.stack(labs).astype(np.int64))
    x2, y2, n = copy_paste(x, y, np.random.default_rng(1), max_paste=25)
    assert n > 0
    light = class_id("traffic light")
    assert (y2 == light).sum() > (y == light).sum()
    # relevant pixels that existed before are still there (nothing was pasted over them)
    rel = torch.isin(y, torch.tensor(RELEVANT))
    assert torch.equal(y2[rel], y[rel])
    changed = (y2 != y)
    assert torch.isin(y2[changed], torch.tensor([light, class_id("traffic sign")])).all()
    # image pixels change only where labels were pasted
    assert torch.equal((x2 != x).any(dim=1) & ~changed, torch.zeros_like(changed))


def test_geometric_and_colour_keep_valid_ranges():
    rng = np.random.default_rng(0)
    img, lab = _scene(rng)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    y = torch.from_numpy(lab.astype(np.int64))[None]
    cfg = AugmentConfig(rotate_deg=20)
    x2, y2 = geometric(x.repeat(3, 1, 1, 1), y.repeat(3, 1, 1), rng, cfg)
    assert x2.shape == (3, 3, 64, 128) and y2.shape == (3, 64, 128)
    values = set(torch.unique(y2).tolist())
    assert values <= set(np.unique(lab).tolist()) | {VOID}
    x3 = colour_jitter(x2, rng, cfg)
    assert x3.min() >= -1 and x3.max() <= 1


def test_keep_fractions_cover_5_to_100_percent_with_mass_at_the_evaluated_rates():
    rng = np.random.default_rng(0)
    m = np.array([sample_keep_fraction(rng) for _ in range(20000)])
    assert m.min() >= 0.05 and m.max() <= 1.0
    for point in (0.2, 0.5, 1.0):  # each grid point gets about a sixth of the steps
        assert 0.14 <= np.mean(m == point) <= 0.19
    assert np.mean(m >= 0.5) >= 0.45  # the old log-normal gave ~13%
    between = m[~np.isin(m, (0.2, 0.5, 1.0))]
    assert between.min() < 0.1 and between.max() > 0.9


def test_losses_follow_the_class_weights():
    table = class_weight_table({"traffic light": 1.0, "sky": 0.0, "_other": 0.5})
    assert table[class_id("sky")] == 0 and table[class_id("car")] == 0.5 and table[-1] == 0
    logits = torch.zeros(1, 20, 2, 2)
    lab = torch.tensor([[[class_id("sky"), class_id("sky")], [VOID, VOID]]])
    assert weighted_cross_entropy(logits, lab, table) == 0  # only zero-weight pixels
    x, x_hat = torch.ones(1, 3, 1, 2), torch.zeros(1, 3, 1, 2)
    lab2 = torch.tensor([[[class_id("sky"), class_id("person")]]])
    fake = relevance_reinjection(x_hat, x, lab2)
    assert fake[0, 0, 0, 0].item() == pytest.approx(0.9) and fake[0, 0, 0, 1].item() == 0.0


def test_bad_training_yaml_names_the_field(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: 2\ncrop: [30, 64]\n")
    assert main(["train", "semantic", "--data", str(dataset), "--out", str(tmp_path / "o"),
                 "--train-config", str(bad)]) == 2
    assert "crop" in capsys.readouterr().err


def test_ddp_on_cpu_with_gloo_two_processes(dataset, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    sqgan = str(Path(sys.executable).with_name("sqgan"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "--no-python", sqgan, "train", "image", "--data", str(dataset), "--out", str(tmp_path / "ddp"),
           "--init", str(tmp_path / "init.pt"), "--train-config", str(dataset / "train.yaml")]
    from sqgan_core.checkpoint import save_checkpoint
    from sqgan_core.config import parse_config
    from sqgan_core.models import SQGAN
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "init.pt", SQGAN(parse_config(TINY_MODEL)))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    _, meta = load_checkpoint(tmp_path / "ddp" / "model.pt")
    assert meta["world_size"] == 2 and meta["step"] == 4


def _trainer(dataset, tmp_path, stage="joint", **cfg):
    from sqgan_core.checkpoint import build_untrained
    from sqgan_core.config import parse_config
    from sqgan_core.data import CityscapesPairs
    from sqgan_core.models import SQGAN
    from sqgan_core.training.config import parse_train_config
    from sqgan_core.training.trainer import Trainer

    model = SQGAN(parse_config(TINY_MODEL))
    train_cfg = parse_train_config({**TINY_TRAIN, **cfg})
    return Trainer(stage, model, train_cfg, CityscapesPairs(dataset, "train").pairs,
                   CityscapesPairs(dataset, "val").pairs, tmp_path / "run", progress=False)


def test_joint_stage_trains_the_semantic_half_at_its_own_learning_rate(dataset, tmp_path):
    tr = _trainer(dataset, tmp_path, steps=2, semantic_lr_scale=0.25, warmup_steps=0, lr_min_ratio=1.0)
    sem = {id(p) for p in tr.module.semantic.parameters()}
    img_group, sem_group = tr.opt.param_groups
    assert {id(p) for p in sem_group["params"]} == sem and not sem & {id(p) for p in img_group["params"]}
    before = [p.detach().clone() for p in sem_group["params"]]
    tr.run()
    assert sem_group["lr"] == pytest.approx(0.25 * img_group["lr"]) and img_group["lr"] == pytest.approx(tr.cfg.lr)
    assert any(not torch.equal(a, p) for a, p in zip(before, sem_group["params"]))  # G_s still learns
    from sqgan_core.config import ConfigError
    from sqgan_core.training.config import parse_train_config

    with pytest.raises(ConfigError, match="semantic_lr_scale"):
        parse_train_config({"semantic_lr_scale": 0})


def test_joint_stage_keeps_the_best_checkpoint_by_validation_with_priors(dataset, tmp_path, monkeypatch):
    tr = _trainer(dataset, tmp_path, steps=6, val_every=2, ckpt_every=2)
    scores = iter([(0.30, 20.0), (0.25, 19.0), (0.31, 18.0)])  # step 2 best; step 6's mIoU gain < its dB loss

    def fake_validate():
        miou, db = next(scores)
        return {"val_miou_shat_m0.5": miou, "val_psnr_m0.5": db}

    monkeypatch.setattr(tr, "validate", fake_validate)
    tr.run()
    model, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    assert meta["best"] == {"val_miou_shat_m0.5": 0.30, "val_psnr_m0.5": 20.0}
    assert meta["best_step"] == 2 and meta["stage"] == "joint"
    assert meta["priors"]["used_codes_x"] > 0
    assert not torch.allclose(model.img_mq.index_prior, torch.full_like(model.img_mq.index_prior,
                                                                          1 / model.img_mq.index_prior.numel()))
    assert load_checkpoint(tmp_path / "run" / "model.pt")[1]["step"] == 6  # model.pt is the latest
    val = json.loads((tmp_path / "run" / "val.json").read_text())
    assert val["best"]["step"] == 2 and val["last"]["val_psnr_m0.5"] == 18.0
    rows = list(csv.DictReader(open(tmp_path / "run" / "val.csv")))
    assert [r["best"] for r in rows] == ["1", "0", "0"]


def test_joint_stage_runs_from_the_command_line_and_records_its_seeds(dataset, tmp_path, capsys):
    assert _train(dataset, "joint", tmp_path / "j") == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["stage"] == "joint" and out["best"].endswith("best.pt")
    _, meta = load_checkpoint(tmp_path / "j" / "best.pt")
    assert "val_miou_shat_m0.5" in meta["best"] and "val_psnr_m0.5" in meta["best"]
    rows = list(csv.DictReader(open(tmp_path / "j" / "log.csv")))
    assert {"ce", "rec", "lr", "true_map"} <= set(rows[0])
    from sqgan_core.cli.train_commands import city_seeds
    from sqgan_core.data.cityscapes import Pair

    assert city_seeds([Pair("a", Path("x/default17/a.png"), Path("l")),
                       Pair("b", Path("x/rainynight40/b.png"), Path("l"))]) == [17, 40]


def test_learning_rate_warms_up_then_decays_to_the_deadline(dataset, tmp_path):
    import time

    tr = _trainer(dataset, tmp_path, steps=100, warmup_steps=10, lr_min_ratio=0.1)
    tr._total, tr._deadline = 100, None
    tr.step = 0
    assert tr.lr_factor() == pytest.approx(0.1 * (1.0), rel=0.02)  # first warm-up step: 1/10 of the peak
    tr.step = 9
    assert tr.lr_factor() == pytest.approx(0.982, abs=0.005)  # warmed up, 9% into the cosine
    tr.step = 50
    assert tr.lr_factor() == pytest.approx(0.55, abs=0.01)  # half-way down the cosine
    tr.step = 100
    assert tr.lr_factor() == pytest.approx(0.1)
    # On a clock the deadline, not the step count, ends the schedule.
    tr.step, tr._deadline, tr._t0 = 20, 10.0, time.perf_counter() - 10.0
    assert tr.lr_factor() == pytest.approx(0.1)
    tr._t0 = time.perf_counter() - 5.0
    assert tr.lr_factor() == pytest.approx(0.55, abs=0.02)


def test_every_class_is_supervised_in_the_image_loss(dataset, tmp_path):
    tr = _trainer(dataset, tmp_path, stage="image")
    assert tr.img_table[:-1].min() >= 0.15 and tr.img_table[-1] == 0  # the paper's sky/vegetation 0 is floored
    assert tr.img_table[class_id("traffic light")] == 1.0


def test_validation_and_prior_samples_cover_every_city():
    from sqgan_core.data.cityscapes import Pair
    from sqgan_core.training.trainer import spread_over_cities

    pairs = [Pair(f"{c}{i}", Path(f"leftImg8bit/val/{c}/{i}.png"), Path("l")) for c in ("a", "b", "c", "d")
             for i in range(30)]
    picked = spread_over_cities(pairs, 10)
    assert len(picked) == 10 and {p.image.parent.name for p in picked} == {"a", "b", "c", "d"}
    a = [int(p.image.stem) for p in spread_over_cities(pairs, 64) if p.image.parent.name == "a"]
    assert a[0] == 0 and a[-1] == 29 and len(a) == 16  # spread over the whole clip, not its start
    assert len(spread_over_cities(pairs, 500)) == 120


def test_device_batch_stream_is_deterministic_and_resumable(dataset):
    from sqgan_core.data import CityscapesPairs
    from sqgan_core.training.data import DeviceBatchStream

    pairs = CityscapesPairs(dataset, "train").pairs
    a = DeviceBatchStream(pairs, 3, (32, 64), seed=1, device="cpu", augment=AugmentConfig())
    batches = [next(a) for _ in range(3)]
    x, y = batches[0]
    assert x.shape == (3, 3, 32, 64) and y.shape == (3, 32, 64) and x.min() >= -1 and x.max() <= 1
    assert set(torch.unique(y).tolist()) <= set(range(19)) | {VOID}
    b = DeviceBatchStream(pairs, 3, (32, 64), seed=1, device="cpu", augment=AugmentConfig())
    b.restore({"batches": 2})
    assert torch.equal(next(b)[0], batches[2][0]) and not torch.equal(batches[0][0], batches[1][0])


def test_training_yaml_rejects_bad_schedule_and_rates(tmp_path):
    from sqgan_core.config import ConfigError
    from sqgan_core.training.config import parse_train_config

    for bad, field in (({"keep_grid": [0.5, 1.5]}, "keep_grid"), ({"keep_range": [0.6, 0.2]}, "keep_range"),
                       ({"lr_min_ratio": 2}, "lr_min_ratio"), ({"image_weight_floor": -1}, "image_weight_floor")):
        with pytest.raises(ConfigError, match=field):
            parse_train_config(bad)


def test_bench_train_times_each_stage_on_the_same_data(dataset, tmp_path, capsys):
    from sqgan_core.checkpoint import save_checkpoint
    from sqgan_core.config import parse_config
    from sqgan_core.models import SQGAN

    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, SQGAN(parse_config(TINY_MODEL)))
    args = ["bench", "train", "--data", str(dataset), "--model", str(ckpt), "--train-config",
            str(dataset / "train.yaml"), "--steps", "1", "--warmup", "0", "--json"]
    assert main(args + ["--stages", "semantic,finetune,joint"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(r["stages"]) == {"semantic", "finetune", "joint"}
    assert all(v["s_per_step_p50"] > 0 for v in r["stages"].values())
    assert r["joint_over_semantic_plus_finetune"] > 0
    assert main(args + ["--stages", "semantic,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_priors_can_combine_a_new_image_pipeline_with_another_semantic_one(dataset, tmp_path, capsys):
    from sqgan_core.checkpoint import save_checkpoint
    from sqgan_core.config import parse_config
    from sqgan_core.models import SQGAN

    torch.manual_seed(1)
    a = SQGAN(parse_config(TINY_MODEL))
    torch.manual_seed(2)
    b = SQGAN(parse_config(TINY_MODEL))
    save_checkpoint(tmp_path / "a.pt", a, {"stage": "joint"})
    save_checkpoint(tmp_path / "b.pt", b, {"stage": "semantic", "step": 7})
    assert main(["train", "priors", "--model", str(tmp_path / "a.pt"), "--semantic-from", str(tmp_path / "b.pt"),
                 "--data", str(dataset), "--frames", "3", "-o", str(tmp_path / "ab.pt")]) == 0
    ab, meta = load_checkpoint(tmp_path / "ab.pt")
    for k, v in ab.state_dict().items():
        if k.endswith("index_prior"):
            continue
        src = b if k.startswith(("sem_conv_in.", "sem_encoder.", "sem_mq.", "sem_decoder.")) else a
        assert torch.equal(v, src.state_dict()[k]), k
    assert meta["semantic_from"]["step"] == 7 and meta["priors"]["used_codes_s"] >= 1
