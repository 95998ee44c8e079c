import pytest

from sqgan_core.config import ConfigError, load_config, parse_config, resolve_config_path


def test_shipped_configs_load_with_paper_dimensions():
    paper = load_config("paper")
    assert paper.image.z_channels == 256 and paper.image.codebook_size == 1024
    assert paper.image.ch == 128 and paper.image.ch_mult == (1, 1, 2, 2, 4)
    assert paper.image.attn_levels == (4,) and paper.image.adm_depth == 8
    assert paper.downsample == 16
    small = load_config("small")
    assert small.downsample == 16 and small.image.codebook_size == 1024


def test_pipeline_overrides_apply_per_stream():
    cfg = parse_config({"name": "t", "network": {"ch": 8}, "semantic": {"z_channels": 32}})
    assert cfg.semantic.z_channels == 32 and cfg.image.z_channels == 256
    assert cfg.semantic.ch == cfg.image.ch == 8


@pytest.mark.parametrize("data, field", [
    ({"name": "t", "network": {"chh": 8}}, "chh"),
    ({"name": "t", "network": {"codebook_size": 1000}}, "codebook_size"),
    ({"name": "t", "network": {"ch_mult": [1, 2, 4]}}, "ch_mult"),
    ({"name": "t", "network": {"adm_heads": 3}}, "adm_heads"),
    ({"name": "t", "network": {"ema_decay": 1.5}}, "ema_decay"),
    ({"name": "t", "network": {"ch": "wide"}}, "ch"),
    ({"name": "t", "num_classes": 35}, "num_classes"),
    ({"name": "t", "extra": 1}, "extra"),
    ({"network": {}}, "name"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        parse_config(data, "cfg.yaml")


def test_bad_yaml_and_missing_files_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown model config 'nope'"):
        resolve_config_path("nope")
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(notmap)


def test_yaml_reads_exponent_floats_as_numbers():
    from sqgan_core.config import load_yaml

    assert load_yaml("a: 1e12\nb: -5E-3\nc: .5e2\nd: 1.5\ne: 7\nf: 1e\ng: '1e3'\n") == \
        {"a": 1e12, "b": -5e-3, "c": 50.0, "d": 1.5, "e": 7, "f": "1e", "g": "1e3"}


def test_importing_the_codec_loads_no_simulator_and_no_ros():
    """The codec knows no node: `import sqgan_core` (and resolving its configs) pulls in neither the
    simulator nor any ROS package, not even the ament index."""
    import subprocess
    import sys

    code = ("import sys, sqgan_core, sqgan_core.codec, sqgan_core.config as c; c.config_dirs(); "
            "print(sorted(m for m in ('sim', 'rclpy', 'ament_index_python', 'ros2_ws') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
