"""`sqgan encode | decode | info`: the codec on files, in the spirit of cwebp / dwebp / webpinfo."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqgan_core.bitstream import FrameError, frame_stats, read_header
from sqgan_core.checkpoint import CheckpointError
from sqgan_core.errors import CommandError
from sqgan_core.arguments import keep_fraction
from sqgan_core.cli.model_options import add_model_options, codec_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="compress an image and its semantic map into an SQ-GAN frame",
                       description="Compress IMAGE (any size; RGB) with its trainId label map into a frame. "
                                   "Prints the frame's size against the paper's bound.")
    p.add_argument("image", type=Path, help="input image (PNG, JPEG, ...)")
    p.add_argument("--labels", type=Path, required=True,
                   help="trainId PNG of the same size (0..18, 255 = void); a Cityscapes colour PNG also works")
    p.add_argument("--mx", type=keep_fraction, default=0.5, help="fraction of image tokens kept, 0..1 (default 0.5)")
    p.add_argument("--ms", type=keep_fraction, default=0.5, help="fraction of semantic tokens kept, 0..1 (default 0.5)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output frame file (.sqg)")
    p.add_argument("--json", action="store_true", help="print the frame statistics as JSON")
    add_model_options(p)
    p.set_defaults(func=_encode)

    p = sub.add_parser("decode", help="reconstruct the image and semantic map from a frame",
                       description="Decode FRAME into an RGB PNG and (optionally) the reconstructed trainId map.")
    p.add_argument("frame", type=Path, help="frame file written by `sqgan encode`")
    p.add_argument("-o", "--output", type=Path, required=True, help="reconstructed image (PNG)")
    p.add_argument("--labels-out", type=Path, help="reconstructed trainId map s_hat (palette PNG)")
    add_model_options(p)
    p.set_defaults(func=_decode)

    p = sub.add_parser("info", help="describe a frame: size, masking fractions, bits against the bound",
                       description="Read a frame's header (no model needed) and report its size, rate and "
                                   "the paper's bound K(2 + log2 J (m_x + m_s)).")
    p.add_argument("frame", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None


def _print_stats(stats: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(stats, sort_keys=True))
        return
    print(f"{stats['width']}x{stats['height']}  mx={stats['mx']:.4f} ms={stats['ms']:.4f}  "
          f"{stats['bytes']} bytes = {stats['bits']} bits ({stats['bpp']:.5f} bpp, {stats['mode']} coded)\n"
          f"paper bound: {stats['bound_bits']} bits ({stats['bound_bpp']:.5f} bpp) + {stats['header_bits']} header bits; "
          f"payload is {stats['payload_bits'] / max(stats['bound_bits'], 1):.3f} x the bound")


def _encode(args: argparse.Namespace) -> int:
    from sqgan_core.imageio import check_output_path, read_labels, read_rgb

    try:
        check_output_path(args.output, "file")
        image = read_rgb(args.image)
        labels = read_labels(args.labels)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    codec = codec_from_args(args)
    try:
        frame = codec.encode(image, labels, args.mx, args.ms)
    except (ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(frame.data)
    stats = frame.stats
    for flag, asked, kept in (("--mx", args.mx, stats["n_x"]), ("--ms", args.ms, stats["n_s"])):
        if asked > 0 and kept == 0:  # N = floor(m K): a small image can round a requested rate to nothing
            print(f"note: {flag} {asked:g} keeps floor({asked:g} x {stats['tokens']}) = 0 of the image's "
                  f"{stats['tokens']} token(s): that stream carries no tokens", file=sys.stderr)
    _print_stats(stats, args.json)
    return 0


def _decode(args: argparse.Namespace) -> int:
    from sqgan_core.imageio import check_output_path, write_labels, write_rgb

    try:
        check_output_path(args.output, "rgb")
        if args.labels_out:
            check_output_path(args.labels_out, "labels")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    data = _read_bytes(args.frame)
    codec = codec_from_args(args)
    try:
        out = codec.decode(data)
    except FrameError as exc:
        raise CommandError(f"{args.frame}: {exc}") from None
    write_rgb(args.output, out.image)
    if args.labels_out:
        write_labels(args.labels_out, out.labels)
    print(f"decoded {out.header.width}x{out.header.height} -> {args.output}"
          + (f", {args.labels_out}" if args.labels_out else ""), file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    data = _read_bytes(args.frame)
    try:
        header = read_header(data)
    except FrameError as exc:
        raise CommandError(f"{args.frame}: {exc}") from None
    _print_stats(frame_stats(header, len(data)), args.json)
    return 0


__all__ = ["register", "CheckpointError"]
