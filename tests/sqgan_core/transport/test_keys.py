import os
import stat

import pytest
import zmq.auth

from sqgan_core.transport.keys import (
    KeyFileError,
    generate,
    generate_set,
    load_allow_list,
    load_keypair,
    load_public,
    read_metadata,
)
from sqgan_core.cli import main as sqgan


def test_generate_set_layout_and_zmq_compatibility(tmp_path):
    generate_set(tmp_path, 2)
    for name in ("rsu", "link", "vehicle_0", "vehicle_1"):
        pub, sec = zmq.auth.load_certificate(tmp_path / f"{name}.key_secret")
        assert len(pub) == 40 and len(sec) == 40
        assert zmq.auth.load_certificate(tmp_path / f"{name}.key")[0] == pub
        assert stat.S_IMODE(os.stat(tmp_path / f"{name}.key_secret").st_mode) == 0o600
    allowed = load_allow_list(tmp_path / "allowed")
    roles = sorted((p.name, p.role, p.vehicle_id) for p in allowed.values())
    assert roles == [("link", "relay", None), ("vehicle_0", "vehicle", 0), ("vehicle_1", "vehicle", 1)]
    assert set(zmq.auth.load_certificates(tmp_path / "allowed")) == set(allowed)


def test_refuses_overwrite_and_bad_names(tmp_path):
    generate(tmp_path, "vehicle_3", "vehicle", 3)
    with pytest.raises(KeyFileError, match="already exists"):
        generate(tmp_path, "vehicle_3", "vehicle", 3)
    generate(tmp_path, "vehicle_3", "vehicle", 3, overwrite=True)
    with pytest.raises(KeyFileError, match="key name"):
        generate(tmp_path, "../evil", "vehicle", 1)
    with pytest.raises(KeyFileError, match="vehicle_id"):
        generate(tmp_path, "v", "vehicle")
    with pytest.raises(KeyFileError, match="role"):
        generate(tmp_path, "v", "king")


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(KeyFileError, match="nope.key_secret"):
        load_keypair(tmp_path / "nope.key_secret")
    generate(tmp_path, "v", "vehicle", 1)
    with pytest.raises(KeyFileError, match="no secret key"):
        load_keypair(tmp_path / "v.key")
    bad = tmp_path / "bad.key"
    bad.write_text('curve\n    public-key = "short"\n')
    with pytest.raises(KeyFileError, match="40 z85"):
        load_public(bad)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_allow_list(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match="no \\*.key"):
        load_allow_list(tmp_path / "empty")
    assert read_metadata(tmp_path / "v.key")["vehicle_id"] == "1"


def test_sqgan_keys_command(tmp_path, capsys):
    assert sqgan(["keys", "--out", str(tmp_path), "--vehicles", "3"]) == 0
    assert (tmp_path / "vehicle_2.key_secret").is_file()
    assert sqgan(["keys", "--out", str(tmp_path), "--vehicles", "3"]) == 2  # refuses to overwrite
    assert "already exists" in (err := capsys.readouterr().err) and "--force" in err
    for n in ("0", "-2"):  # a key set without vehicles would let a pipeline start that accepts nobody
        with pytest.raises(SystemExit) as exc:  # refused while the arguments are parsed
            sqgan(["keys", "--out", str(tmp_path / f"none{n}"), "--vehicles", n])
        assert exc.value.code == 2
        assert "--vehicles" in capsys.readouterr().err and not (tmp_path / f"none{n}" / "rsu.key").exists()
    assert sqgan(["keys", "--out", str(tmp_path), "--name", "truck_9", "--vehicle-id", "9"]) == 0
    assert load_allow_list(tmp_path / "allowed")[load_public(tmp_path / "truck_9.key")].vehicle_id == 9
