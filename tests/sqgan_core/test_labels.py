import numpy as np
import pytest

from sqgan_core.labels import (
    CLASS_NAMES,
    PALETTE,
    class_id,
    colorize,
    decolorize,
    from_channel_index,
    to_channel_index,
    validate_train_ids,
)


def test_palette_roundtrip_including_void():
    lab = np.array([[0, 1, 18], [255, 11, 6]], dtype=np.uint8)
    assert np.array_equal(decolorize(colorize(lab)), lab)
    assert tuple(colorize(lab)[1, 0]) == (0, 0, 0)
    assert len(CLASS_NAMES) == len(PALETTE) == 19


def test_void_maps_to_channel_19_and_back():
    lab = np.array([[255, 3]], dtype=np.uint8)
    idx = to_channel_index(lab)
    assert idx.tolist() == [[19, 3]]
    assert np.array_equal(from_channel_index(idx), lab)


def test_validation_names_bad_values():
    with pytest.raises(ValueError, match=r"\[19, 200\]"):
        validate_train_ids(np.array([[19, 200, 255]]))
    with pytest.raises(ValueError, match="integers"):
        validate_train_ids(np.zeros((2, 2), np.float32))


def test_class_lookup():
    assert class_id("traffic light") == 6
    with pytest.raises(KeyError, match="unknown Cityscapes class"):
        class_id("unicorn")
