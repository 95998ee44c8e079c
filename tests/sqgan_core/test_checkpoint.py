import numpy as np
import pytest
import torch

from sqgan_core.checkpoint import CheckpointError, build_untrained, load_checkpoint, model_id_of, save_checkpoint
from sqgan_core.codec import Codec


def test_save_load_roundtrip_keeps_model_id_and_output(tmp_path):
    model = build_untrained("small", seed=3)
    save_checkpoint(tmp_path / "m.pt", model, {"stage": "test"})
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta == {"stage": "test"}
    assert model_id_of(loaded) == model_id_of(model)
    a, b = Codec(model), Codec.from_checkpoint(tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (32, 48)).astype(np.uint8)
    data = a.encode(img, lab, 0.5, 0.5).data
    assert data == b.encode(img, lab, 0.5, 0.5).data
    assert np.array_equal(a.decode(data).image, b.decode(data).image)


def test_model_id_depends_on_weights():
    assert model_id_of(build_untrained("small", seed=1)) != model_id_of(build_untrained("small", seed=2))


class Evil:
    def __reduce__(self):
        return (exec, ("open('/tmp/sqgan_pwned', 'w').write('x')",))


def test_pickled_code_is_never_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "sqgan-checkpoint", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights-only load refuses"):
        load_checkpoint(path)
    import os
    assert not os.path.exists("/tmp/sqgan_pwned")


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", "not a checkpoint: torch.save files are zip archives"),
    (None, "not found"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_foreign_dicts_and_mismatched_weights(tmp_path):
    torch.save({"some": torch.zeros(2)}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="not an SQ-GAN checkpoint"):
        load_checkpoint(tmp_path / "a.pt")
    model = build_untrained("small")
    save_checkpoint(tmp_path / "b.pt", model)
    blob = torch.load(tmp_path / "b.pt", weights_only=True)
    blob["config"]["image"]["z_channels"] = 32
    torch.save(blob, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "b.pt")


class _Gadget:  # an arbitrary object: weights-only loading must refuse it
    pass


def test_bad_checkpoints_say_what_is_wrong_in_one_line(tmp_path):
    import pickle as pk

    import pytest
    import torch

    from sqgan_core.checkpoint import CheckpointError, load_checkpoint

    files = {
        "text.pt": (b"hello, not a checkpoint\n", "zip archives"),
        "pickle.pt": (pk.dumps({"a": 1}), "zip archives"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"g": _Gadget()}, tmp_path / "object.pt")
    files["object.pt"] = (None, "weights-only load refuses")
    torch.save({"format": "sqgan-checkpoint", "format_version": 1, "config": {"name": "small"}, "state_dict": {}},
               tmp_path / "empty.pt")
    files["empty.pt"] = (None, "missing (first: ")
    blob = (tmp_path / "empty.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    files["truncated.pt"] = (None, "damaged or truncated")
    for name, (_, message) in files.items():
        with pytest.raises(CheckpointError) as exc:
            load_checkpoint(tmp_path / name)
        text = str(exc.value)
        assert message in text and "\n" not in text and "KeyError" not in text, (name, text)
