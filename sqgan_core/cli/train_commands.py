"""`sqgan train semantic | image | finetune | priors`: the paper's three stages and the prior fit.

Distributed: `torchrun --nproc_per_node N --no-python sqgan train ...` (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqgan_core.errors import CommandError
from sqgan_core.arguments import device_name, non_negative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train SQ-GAN (stages semantic, image, finetune, joint) and fit priors",
                       description="Stage 1 'semantic' trains G_s; stage 2 'image' trains G_x on the true map; "
                                   "stage 3 'finetune' trains G_x on s_hat with G_s frozen; 'joint' trains G_s and "
                                   "G_x together (G_x on the detached s_hat); 'priors' fits the entropy coder's "
                                   "index priors from code usage. Every run keeps its best checkpoint by "
                                   "validation in OUT/best.pt (with fitted priors): the file to ship.")
    stages = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage, text in (("semantic", "stage 1: G_s with weighted cross-entropy"),
                        ("image", "stage 2: G_x with the true semantic map"),
                        ("finetune", "stage 3: G_x on s_hat, G_s frozen; fits the priors at the end"),
                        ("joint", "G_s and G_x in one loop, G_x on G_s's detached s_hat; best.pt (with priors) ships")):
        s = stages.add_parser(stage, help=text, description=text)
        s.add_argument("--data", type=Path, required=True, help="Cityscapes-layout root for training")
        s.add_argument("--split", default="train", help="training split (default train)")
        s.add_argument("--val-data", type=Path, help="validation root (default: --data)")
        s.add_argument("--val-split", default="val", help="validation split (default val)")
        s.add_argument("--out", type=Path, required=True, help="run directory (model.pt, train_state.pt, logs)")
        s.add_argument("--config", default="small", help="model config for a fresh stage-1 or stage-2 run (default small)")
        s.add_argument("--init", help="checkpoint to start from, or 'shipped' for the shipped weights (required "
                                       "for finetune; stage 2 trains on the true map and can start fresh beside stage 1)")
        s.add_argument("--train-config", type=Path, help="training YAML: a path, or a name in configs/train/ (e.g. small_cpu_joint)")
        s.add_argument("--steps", type=positive_int, help="override the config's step count")
        s.add_argument("--resume", action="store_true", help="continue the run in --out")
        if stage == "finetune":
            s.add_argument("--semantic-from", type=Path,
                           help="take G_s (the frozen semantic pipeline) from this checkpoint instead of --init's, "
                                "so stage 2 can run beside stage 1 and stage 3 joins them")
        s.add_argument("--max-minutes", type=positive_float,
                       help="stop after this much training time, validated and checkpointed (resume with --resume)")
        s.add_argument("--device", type=device_name, default="cpu")
        s.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (default: torch's choice)")
        s.set_defaults(func=_train)
    from sqgan_core.cli.segment_commands import register_training

    register_training(stages)
    _register_concealer(stages)
    s = stages.add_parser("codebooks", help="k-means reductions of both codebooks (512/256/128/64) into a checkpoint",
                          description="Cluster each stream's codebook, weighted by code usage (the fitted priors), "
                                      "into smaller codebooks for variable bitrate; the tables go into the checkpoint's "
                                      "metadata (the model id stays: the weights do not change).")
    s.add_argument("--model", required=True, help="checkpoint path, or 'shipped'")
    s.add_argument("--sizes", default="512,256,128,64", help="comma-separated powers of two below the codebook size")
    s.add_argument("-o", "--output", type=Path, required=True)
    s.set_defaults(func=_codebooks)
    s = stages.add_parser("priors", help="fit index priors from code usage and store them in a checkpoint")
    s.add_argument("--model", required=True, help="checkpoint path, or 'shipped' for the shipped weights")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--split", default="train")
    s.add_argument("--frames", type=positive_int, default=500, help="frames to count codes on, spread over every city "
                                                            "(scenario and seed) of the split (default 500)")
    s.add_argument("--semantic-from", type=Path,
                   help="first replace G_s (E_s, SAMM/VQ/ADM, D_s) with this checkpoint's, e.g. a new G_x with the "
                        "shipped G_s; the priors are then fitted for the combination")
    s.add_argument("-o", "--output", type=Path, required=True)
    s.set_defaults(func=_priors)


def _register_concealer(stages: argparse._SubParsersAction) -> None:
    text = ("the RSU's lost-token concealers (both streams) for one codec's weights, trained on packet loss "
            "simulated with the pipeline's own packetizer and channel models")
    s = stages.add_parser("concealer", help=text, description=text + ". Writes OUT/concealer_<kind>.pt (best by "
                          "validation, after every validation) and OUT/summary_<kind>.json.")
    s.add_argument("--data", type=Path, nargs="+", required=True,
                   help="Cityscapes-layout roots (several: data/seeds_A_B data/seeds_C_D)")
    s.add_argument("--split", default="train")
    s.add_argument("--val-data", type=Path, help="validation root (default: the first --data)")
    s.add_argument("--val-split", default="val")
    s.add_argument("--frames", type=positive_int, help="use at most this many training frames (spread over the roots)")
    s.add_argument("--out", type=Path, required=True, help="run folder (concealer, summary)")
    s.add_argument("--cache", type=Path, help="token-map cache folder, shared by runs (default: --out); a cache file "
                   "is named by the codec's model id and the frames' names, so other frames or weights never reuse it")
    s.add_argument("--kind", choices=("bidirectional", "autoregressive"), default="bidirectional")
    s.add_argument("--model", default="shipped", help="the codec the concealer serves: 'shipped' or a checkpoint")
    s.add_argument("--init", help="warm start: a concealer file, or 'shipped' (the shipped concealer of --kind)")
    s.add_argument("--steps", type=positive_int, default=100_000)
    s.add_argument("--max-minutes", type=positive_float, help="stop after this much time (loading included)")
    s.add_argument("--batch-size", type=positive_int, default=16)
    s.add_argument("--lr", type=positive_float, default=1e-3)
    s.add_argument("--val-every", type=positive_int, default=100)
    s.add_argument("--dim", type=positive_int, default=128)
    s.add_argument("--depth", type=positive_int, default=4)
    s.add_argument("--heads", type=positive_int, default=4)
    s.add_argument("--window", type=positive_int, default=64, help="autoregressive context (tokens)")
    s.add_argument("--seed", type=non_negative_int, default=0)
    s.add_argument("--device", type=device_name, default="cpu")
    s.add_argument("--threads", type=non_negative_int, default=0)
    s.set_defaults(func=_train_concealer)


def _train_concealer(args: argparse.Namespace) -> int:
    import time

    import torch

    started = time.monotonic()
    import hashlib

    from sqgan_core.checkpoint import DEFAULT_CHECKPOINT, CheckpointError
    from sqgan_core.codec import Codec
    from sqgan_core.streaming.concealment import ConcealerError, TransformerConcealer, shipped_concealer
    from sqgan_core.training.concealer import ConcealerRun, TokenMaps, extract_token_maps, train_concealers
    from sqgan_core.training.trainer import spread_over_cities

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        codec = Codec.from_checkpoint(DEFAULT_CHECKPOINT if args.model == "shipped" else Path(args.model),
                                      device=args.device)
    except CheckpointError as exc:
        raise CommandError(f"--model: {exc}") from None
    init = None
    if args.init:
        init = shipped_concealer(args.kind) if args.init == "shipped" else Path(args.init)
        try:
            TransformerConcealer.load(init)  # a bad file fails now, not after minutes of token maps
        except ConcealerError as exc:
            raise CommandError(f"--init: {exc}") from None
    train_pairs = [p for root in args.data for p in _pairs(root, args.split)]
    if args.frames:
        train_pairs = spread_over_cities(train_pairs, args.frames)
    val_pairs = _pairs(args.val_data or args.data[0], args.val_split)
    args.out.mkdir(parents=True, exist_ok=True)

    def maps(pairs, name: str) -> TokenMaps:
        names = "\n".join([f"seed {args.seed}"] + [f"{p.image.parent.name}/{p.name}" for p in pairs])
        key = hashlib.sha1(names.encode()).hexdigest()[:10]
        cache = (args.cache or args.out) / f"tokens_{name}_{codec.model_id:04x}_{len(pairs)}_{key}.npz"
        if cache.is_file():
            m = TokenMaps.load(cache)
            if m.codec_model_id == codec.model_id and len(m) == len(pairs):
                return m
        m = extract_token_maps(codec, [p.load() for p in pairs], seed=args.seed, desc=f"token maps ({name})")
        m.save(cache)
        return m

    try:
        train, val = maps(train_pairs, "train"), maps(val_pairs, "val")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    minutes = None
    if args.max_minutes:
        minutes = max(args.max_minutes - (time.monotonic() - started) / 60, 0.01)
    run = ConcealerRun(kind=args.kind, batch_size=args.batch_size, lr=args.lr, steps=args.steps, max_minutes=minutes,
                       val_every=args.val_every, seed=args.seed, dim=args.dim, depth=args.depth, heads=args.heads,
                       window=args.window)
    try:
        summary = train_concealers(codec, train, val, args.out, run, init=init, device=args.device,
                                   init_label=args.init,
                                   log=lambda s: print(s, file=sys.stderr))
    except (ConcealerError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


def _codebooks(args: argparse.Namespace) -> int:
    from sqgan_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from sqgan_core.codebooks import KEY, reduce_codebooks
    from sqgan_core.imageio import check_output_path

    try:
        check_output_path(args.output)
        sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
    except ValueError as exc:
        raise CommandError(f"{exc}" if "output" in str(exc) else f"--sizes {args.sizes!r}: whole numbers expected") from None
    try:
        model, meta = load_checkpoint(_init_path(args.model))
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    j = min(model.codebook_sizes)
    bad = [s for s in sizes if s < 2 or s & (s - 1) or s >= j]
    if bad or not sizes:
        raise CommandError(f"--sizes: {bad or 'none given'}: each must be a power of two from 2 to {j // 2}")
    meta[KEY] = reduce_codebooks(model, sizes)
    save_checkpoint(args.output, model, meta)
    from sqgan_core.checkpoint import model_id_of

    print(json.dumps({"output": str(args.output), "sizes": list(sizes), "model_id": f"{model_id_of(model):04x}"}))
    return 0


def _pairs(root: Path, split: str | None):
    from sqgan_core.data import CityscapesPairs, DatasetError

    try:
        return CityscapesPairs(root, split).pairs
    except DatasetError as exc:
        raise CommandError(str(exc)) from None


def _train(args: argparse.Namespace) -> int:
    import time

    import torch

    started = time.monotonic()  # --max-minutes counts from here: loading data and model is part of the budget
    from sqgan_core.checkpoint import CheckpointError, build_untrained, load_checkpoint
    from sqgan_core.config import ConfigError
    from sqgan_core.training.config import load_train_config
    from sqgan_core.training.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = load_train_config(args.train_config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    if args.steps:
        cfg.steps = args.steps
    train = _pairs(args.data, args.split)
    val = _pairs(args.val_data or args.data, args.val_split)
    resuming = args.resume and (args.out / "train_state.pt").is_file()
    meta = {"train_data": str(args.data), "train_frames": len(train), "val_data": str(args.val_data or args.data)}
    meta["train_seeds"] = city_seeds(train)
    try:
        if args.init:
            init = _init_path(args.init)
            model, prev = load_checkpoint(init)
            meta["init"] = str(args.init)
            meta["history"] = list(prev.get("history", [])) + [{k: prev[k] for k in ("stage", "step") if k in prev}]
        elif args.stage == "finetune" and not resuming:
            raise CommandError("stage 'finetune' continues an image-stage run: pass --init CHECKPOINT")
        else:
            model = build_untrained(args.config, seed=0)
        semantic_from = getattr(args, "semantic_from", None)
        if semantic_from and not resuming:
            sem, sem_meta = load_checkpoint(semantic_from)
            copy_semantic_pipeline(sem, model)
            meta["semantic_from"] = {"path": str(semantic_from),
                                     **{k: sem_meta[k] for k in ("stage", "step") if k in sem_meta}}
    except (CheckpointError, ConfigError) as exc:
        raise CommandError(str(exc)) from None
    trainer = Trainer(args.stage, model, cfg, train, val, args.out, device=args.device, metadata=meta)
    if resuming:
        trainer.resume()
        print(f"resumed {args.out} at step {trainer.step}", file=sys.stderr)
    elif args.resume:
        print(f"nothing to resume in {args.out}; starting fresh", file=sys.stderr)
    print(f"perceptual term: {trainer.perceptual.detail}", file=sys.stderr)
    budget = None
    if args.max_minutes:
        budget = max(args.max_minutes * 60 - (time.monotonic() - started), 0.0)  # 0: one step, then stop
    result = trainer.run(max_seconds=budget)
    # The joint stage ships best.pt, whose priors are fitted whenever it is saved; stage 3 keeps its
    # paper-recipe ending (priors on 500 frames into model.pt).
    if args.stage == "finetune" and trainer.dist.main:
        from sqgan_core.checkpoint import save_checkpoint
        from sqgan_core.training.priors import apply_priors, count_code_usage
        from sqgan_core.training.trainer import spread_over_cities

        cx, cs = count_code_usage(trainer.model, spread_over_cities(train, 500), device=args.device)
        stats = apply_priors(trainer.model, cx, cs)
        save_checkpoint(trainer.model_path, trainer.model, {**trainer.checkpoint_metadata(), "priors": stats})
        result.update(stats)
    if trainer.dist.main:
        print(json.dumps({"stage": args.stage, "step": trainer.step, "model": str(trainer.model_path),
                          "best": str(trainer.best_path) if trainer.best_path.is_file() else None,
                          **trainer.best, **result}))
    return 0


def _init_path(value: str) -> Path:
    """'shipped' names the shipped weights, anything else is a checkpoint path."""
    if value == "shipped":
        from sqgan_core.checkpoint import DEFAULT_CHECKPOINT

        return DEFAULT_CHECKPOINT
    return Path(value)


def city_seeds(pairs) -> list[int]:
    """[lowest, highest] simulator seed among the training cities (`<scenario><seed>` folders), so each
    checkpoint records which seeds it has seen and the next run can start from unused ones."""
    import re

    seeds = sorted({int(m.group(1)) for p in pairs if (m := re.search(r"(\d+)$", Path(p.image).parent.name))})
    return [seeds[0], seeds[-1]] if seeds else []


def copy_semantic_pipeline(src, dst) -> None:
    """Overwrite dst's semantic pipeline (E_s, SAMM/VQ/ADM, D_s) with src's; both must share a config."""
    from sqgan_core.checkpoint import CheckpointError

    if src.config != dst.config:
        raise CheckpointError(f"--semantic-from has model config {src.config.name!r}, --init has {dst.config.name!r}")
    state = {k: v for k, v in src.state_dict().items() if k.startswith(SEMANTIC_PREFIXES)}
    missing, unexpected = dst.load_state_dict(state, strict=False)
    if unexpected or any(k.startswith(SEMANTIC_PREFIXES) for k in missing):
        raise CheckpointError(f"semantic pipeline does not match: missing {missing[:3]}, unexpected {unexpected[:3]}")


SEMANTIC_PREFIXES = ("sem_conv_in.", "sem_encoder.", "sem_mq.", "sem_decoder.")


def _priors(args: argparse.Namespace) -> int:
    from sqgan_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from sqgan_core.training.priors import apply_priors, count_code_usage

    from sqgan_core.imageio import check_output_path

    try:
        check_output_path(args.output)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    pairs = _pairs(args.data, args.split)
    try:
        model, meta = load_checkpoint(_init_path(args.model))
        if args.semantic_from:
            sem, sem_meta = load_checkpoint(_init_path(str(args.semantic_from)))
            copy_semantic_pipeline(sem, model)
            meta = {**meta, "semantic_from": {"path": str(args.semantic_from),
                                              **{k: sem_meta[k] for k in ("stage", "step", "best") if k in sem_meta}}}
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    from sqgan_core.training.trainer import spread_over_cities

    pairs = spread_over_cities(pairs, args.frames)  # every scenario, not the first clip
    cx, cs = count_code_usage(model, pairs)
    stats = apply_priors(model, cx, cs)
    from sqgan_core.codebooks import KEY, reduce_codebooks

    meta[KEY] = reduce_codebooks(model)  # usage-weighted: redone for the new priors
    save_checkpoint(args.output, model, {**meta, "priors": stats, "priors_data": str(args.data)})
    print(json.dumps({"model": str(args.output), **stats}))
    return 0
