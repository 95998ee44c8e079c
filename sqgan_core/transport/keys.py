"""CurveZMQ key pairs and the RSU's allow-list, in zmq's standard certificate format.

`sqgan keys` writes one pair per party (`<name>.key` public, `<name>.key_secret` secret, as
`zmq.auth.create_certificates` does) and an `allowed/` directory holding the public certificates the
RSU (and the link emulator's front end) accept. Public certificates carry metadata the RSU enforces:
`role` (vehicle | relay | rsu) and, for vehicles, `vehicle_id` — so an allowed vehicle cannot send as
another vehicle, and only a relay (the link emulator) may forward packets on behalf of vehicles.
"""
from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zmq
import zmq.auth

from sqgan_core.errors import InputError

ROLES = ("vehicle", "relay", "rsu")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


class KeyFileError(InputError, ValueError):
    """A missing or malformed key file; the message names the file."""


@dataclass(frozen=True)
class Peer:
    """One allowed public key and what it may do."""

    name: str
    public_key: bytes  # z85, 40 bytes
    role: str
    vehicle_id: int | None = None


def _write_cert(path: Path, public: bytes, secret: bytes | None, metadata: dict[str, str]) -> None:
    kind = "Secret" if secret else "Public"
    lines = [f"#   ****  Generated on {datetime.datetime.now()} by sqgan keys  ****",
             f"#   ZeroMQ CURVE {kind} Certificate", "", "metadata"]
    lines += [f"    {k} = \"{v}\"" for k, v in metadata.items()]
    lines += ["curve", f"    public-key = \"{public.decode()}\""]
    if secret:
        lines.append(f"    secret-key = \"{secret.decode()}\"")
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    if secret:
        os.chmod(path, 0o600)


def generate(directory: str | os.PathLike[str], name: str, role: str, vehicle_id: int | None = None,
             *, allow: bool = True, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `<name>.key` and `<name>.key_secret` (and a copy of the public one in `allowed/`)."""
    if not _NAME.match(name):
        raise KeyFileError(f"key name {name!r} must be a letter then letters, digits or _ (max 63)")
    if role not in ROLES:
        raise KeyFileError(f"role {role!r} must be one of {', '.join(ROLES)}")
    if (role == "vehicle") != (vehicle_id is not None):
        raise KeyFileError("a vehicle key needs a vehicle_id, other roles must not have one")
    if vehicle_id is not None and not 0 <= vehicle_id <= 0xFFFF:
        raise KeyFileError(f"vehicle_id {vehicle_id} must be 0..65535")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pub_path, sec_path = d / f"{name}.key", d / f"{name}.key_secret"
    if not overwrite and (pub_path.exists() or sec_path.exists()):
        raise KeyFileError(f"{pub_path} already exists (pass --force to replace it)")
    public, secret = zmq.curve_keypair()
    meta = {"name": name, "role": role}
    if vehicle_id is not None:
        meta["vehicle_id"] = str(vehicle_id)
    _write_cert(pub_path, public, None, meta)
    _write_cert(sec_path, public, secret, meta)
    if allow and role != "rsu":
        (d / "allowed").mkdir(exist_ok=True)
        _write_cert(d / "allowed" / f"{name}.key", public, None, meta)
    return pub_path, sec_path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The `metadata` section of a zmq certificate (zmq's own loader ignores it)."""
    meta: dict[str, str] = {}
    section = None
    for raw in Path(path).read_text(encoding="utf8", errors="replace").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            section = line.strip()
            continue
        if section == "metadata" and "=" in line:
            k, v = line.split("=", 1)
            meta[k.strip()] = v.strip().strip("\"'")
    return meta


def load_keypair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) from a `.key_secret` file; raises KeyFileError naming the file."""
    p = Path(path)
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read key pair {p}: {exc}") from None
    if not secret:
        raise KeyFileError(f"{p} holds no secret key (pass the .key_secret file)")
    _check_z85(public, p)
    _check_z85(secret, p)
    return public, secret


def load_public(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        public, _ = zmq.auth.load_certificate(p)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read public key {p}: {exc}") from None
    _check_z85(public, p)
    return public


def _check_z85(key: bytes, path: Path) -> None:
    if len(key) != 40:
        raise KeyFileError(f"{path}: a CURVE key is 40 z85 characters, got {len(key)}")
    try:
        zmq.utils.z85.decode(key)
    except Exception:  # noqa: BLE001 - z85 raises assorted errors on bad input
        raise KeyFileError(f"{path}: key is not valid z85") from None


def load_allow_list(directory: str | os.PathLike[str],
                    on_refused: Callable[[Path, str], None] | None = None) -> dict[bytes, Peer]:
    """Every usable `*.key` in `directory`, by z85 public key. Fails closed: a certificate without the
    metadata the RSU enforces (a `role`; for a vehicle its `vehicle_id`; `zmq.auth.create_certificates`
    writes neither) is refused and reported through `on_refused(path, reason)` (default: a logged
    warning), so no key can speak for an unchecked vehicle id. Two keys claiming one vehicle id, an
    unknown role, an unreadable file, or a directory with no usable key are errors: an RSU that
    accepts nobody, or cannot tell two vehicles apart, is a configuration mistake worth stopping on."""
    import logging

    report = on_refused or (lambda path, why: logging.getLogger("sqgan.keys").warning(
        "allow-list: refused %s: %s", path, why))
    d = Path(directory)
    if not d.is_dir():
        raise KeyFileError(f"allow-list directory {d} does not exist (generate keys with `sqgan keys`)")
    peers: dict[bytes, Peer] = {}
    owner: dict[int, Path] = {}
    refused = 0
    for path in sorted(d.glob("*.key")):
        public = load_public(path)
        meta = read_metadata(path)
        role = meta.get("role")
        vid = meta.get("vehicle_id")
        if role is None:
            report(path, "its metadata has no role (certificates from `sqgan keys` carry role and vehicle_id)")
            refused += 1
            continue
        if role not in ROLES:
            raise KeyFileError(f"{path}: role {role!r} must be one of {', '.join(ROLES)}")
        if role == "vehicle" and vid is None:
            report(path, "a vehicle key without a vehicle_id in its metadata")
            refused += 1
            continue
        if role != "vehicle" and vid is not None:
            report(path, f"a {role} key must not carry a vehicle_id")
            refused += 1
            continue
        try:
            vehicle_id = int(vid) if vid is not None else None
        except ValueError:
            raise KeyFileError(f"{path}: vehicle_id {vid!r} is not an integer") from None
        if vehicle_id is not None:
            if vehicle_id in owner:
                raise KeyFileError(f"{owner[vehicle_id]} and {path} both claim vehicle_id {vehicle_id}: "
                                   "one key per vehicle")
            owner[vehicle_id] = path
        peers[public] = Peer(meta.get("name", path.stem), public, role, vehicle_id)
    if not peers:
        raise KeyFileError(f"allow-list directory {d} holds no usable keys"
                           + (f" ({refused} refused, see above)" if refused else " (no *.key files)"))
    return peers


def generate_set(directory: str | os.PathLike[str], vehicles: int = 1, *, first_vehicle_id: int = 0,
                 overwrite: bool = False) -> list[Path]:
    """The keys a pipeline needs: rsu, link (a relay) and `vehicles` (>= 1) vehicles vehicle_<id>."""
    if vehicles < 1:
        raise KeyFileError(f"a key set needs at least one vehicle, got --vehicles {vehicles}")
    out = [generate(directory, "rsu", "rsu", overwrite=overwrite)[0],
           generate(directory, "link", "relay", overwrite=overwrite)[0]]
    for i in range(vehicles):
        vid = first_vehicle_id + i
        out.append(generate(directory, f"vehicle_{vid}", "vehicle", vid, overwrite=overwrite)[0])
    return out
