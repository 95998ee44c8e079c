"""`sqgan keys`: generate the CurveZMQ key pairs a pipeline needs (or one more vehicle's)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sqgan_core.transport.keys import KeyFileError, generate, generate_set
from sqgan_core.arguments import int_in, non_negative_int


def run(args: argparse.Namespace) -> int:
    from sqgan_core.errors import CommandError

    try:
        if args.name:
            role = args.role
            vid = args.vehicle_id if role == "vehicle" else None
            if role == "vehicle" and vid is None:
                raise KeyFileError("--vehicle-id is required for a vehicle key")
            written = [generate(args.out, args.name, role, vid, overwrite=args.force)[0]]
        else:
            written = generate_set(args.out, args.vehicles, first_vehicle_id=args.first_vehicle_id,
                                   overwrite=args.force)
    except KeyFileError as exc:
        raise CommandError(str(exc)) from None
    for path in written:
        print(path)
    print(f"allow-list: {Path(args.out) / 'allowed'} (the RSU and the link accept exactly these keys)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="generate CurveZMQ key pairs for the RSU, the link and vehicles",
                              description="Writes zmq certificates (<name>.key, <name>.key_secret) and an "
                                          "allowed/ directory of the public keys the RSU accepts.")
    p.add_argument("--out", type=Path, default=Path("keys"), help="key directory (default: keys/)")
    p.add_argument("--vehicles", type=int_in(1, 256), default=1, help="how many vehicle keys in a full set (default 1)")
    p.add_argument("--first-vehicle-id", type=non_negative_int, default=0)
    p.add_argument("--name", help="generate only this one key pair (with --role, --vehicle-id)")
    p.add_argument("--role", default="vehicle", choices=("vehicle", "relay", "rsu"))
    p.add_argument("--vehicle-id", type=non_negative_int)
    p.add_argument("--force", action="store_true", help="overwrite existing keys")
    p.set_defaults(func=run)
