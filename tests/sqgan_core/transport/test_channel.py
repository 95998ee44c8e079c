import numpy as np
import pytest
import yaml

from sqgan_core.config import find_config
from sqgan_core.transport.channel import (
    Bernoulli,
    GilbertElliott,
    ProfileError,
    load_profile,
    parse_profile,
)

PROFILES = ["clean", "urban_5pct", "bursty_15pct", "congested", "narrowband"]


@pytest.mark.parametrize("name", PROFILES)
def test_shipped_profiles_load(name):
    p = load_profile(name)
    assert p.name == name
    assert load_profile(find_config("links", name)) == p


def test_shipped_loss_rates_match_their_names():
    assert load_profile("clean").expected_loss() == 0
    assert load_profile("urban_5pct").expected_loss() == pytest.approx(0.05)
    assert load_profile("bursty_15pct").expected_loss() == pytest.approx(0.15)
    assert load_profile("congested").rate_kbps > 0


def test_bernoulli_empirical_rate_and_seed():
    def run(seed):
        rng = np.random.default_rng(seed)
        m = Bernoulli(0.1)
        return np.array([m.lost(rng) for _ in range(20000)])

    a = run(1)
    assert abs(a.mean() - 0.1) < 0.01
    assert np.array_equal(a, run(1)) and not np.array_equal(a, run(2))


def test_gilbert_elliott_rate_and_burstiness():
    rng = np.random.default_rng(0)
    m = GilbertElliott(p=0.05, r=0.2, h=0.25, k=1.0)
    lost = np.array([m.lost(rng) for _ in range(60000)])
    assert abs(lost.mean() - m.expected_loss()) < 0.015
    # bursty: P(loss | previous lost) well above the mean rate (independent losses would give ~0.15)
    cond = lost[1:][lost[:-1]].mean()
    assert cond > 0.4


@pytest.mark.parametrize("doc,needle", [
    ({"name": "x", "loss": {"model": "bernoulli", "p": 1.5}}, "loss.p"),
    ({"name": "x", "loss": {"model": "bernoulli"}}, "loss.p is required"),
    ({"name": "x", "loss": {"model": "gilbert_elliott", "p": 0.1, "r": 0.0}}, "absorbing"),
    ({"name": "x", "loss": {"model": "bernoulli", "p": 0.1, "r": 0.3}}, "loss.r is not a parameter"),
    ({"name": "x", "loss": {"model": "magic"}}, "loss.model"),
    ({"name": "x", "delay_ms": -1}, "delay_ms"),
    ({"name": "x", "delay_ms": "fast"}, "delay_ms"),
    ({"name": "x", "bandwidth": {"rate_kbps": 10, "queue": 3}}, "bandwidth.queue"),
    ({"name": "x", "bandwidth": {"queue_packets": 0}}, "bandwidth.queue_packets"),
    ({"name": "x", "reorder": {"probability": 2}}, "reorder.probability"),
    ({"name": "x", "jiter_ms": 3}, "unknown field"),
    ({"loss": {"model": "none"}}, "name"),
    ([1, 2], "mapping"),
])
def test_profile_validation_names_the_field(doc, needle):
    with pytest.raises(ProfileError, match=needle):
        parse_profile(doc, "test.yaml")


def test_unknown_profile_lists_known(tmp_path):
    with pytest.raises(ProfileError, match="bursty_15pct"):
        load_profile("no_such_profile")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ProfileError, match="YAML"):
        load_profile(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"name": "ok", "loss": {"model": "bernoulli", "p": 0.2}, "seed": 3}))
    assert load_profile(ok).seed == 3


def test_exponent_numbers_in_a_profile_are_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads `1e12` as a string; profiles accept YAML 1.2 floats, so a value out of
    range is refused for its value, with the range in the message."""
    from sqgan_core.transport.channel import ProfileError

    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\ndelay_ms: 2e1\nloss: {model: bernoulli, p: 5E-2}\n")
    p = load_profile(ok)
    assert p.delay_ms == 20.0 and p.expected_loss() == pytest.approx(0.05)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndelay_ms: 1e12\n")
    with pytest.raises(ProfileError, match=r"delay_ms must be in \["):
        load_profile(bad)
