import numpy as np
import pytest

from sqgan_core.rate_evaluation import FrameOracle
from sqgan_core.streaming.packetizer import Packetizer
from sqgan_core.streaming.rate_control import RateController, RateTable, Setting, TableRow
from sqgan_core.streaming.stream import StreamEncoder


def _table():
    rows = [TableRow(Setting(m, m, 1024, 1024), bits, miou, 18 + 5 * m)
            for m, bits, miou in ((0.1, 1500, 0.20), (0.2, 2200, 0.27), (0.3, 3000, 0.31), (0.5, 5000, 0.36))]
    rows.append(TableRow(Setting(0.5, 0.2, 1024, 1024), 4000, 0.25, 20))  # dominated: dearer and worse than (0.3, 0.3)
    return RateTable(rows, 0x1234, 8, 256 * 512)


def _drive(ctl, n=500, seed=0):
    rng = np.random.default_rng(seed)
    sent, used = [], set()
    for k in range(n):
        row = ctl.choose()
        bits = row.bits * 1.25 * rng.uniform(0.8, 1.2)  # this drive's frames are 25 % larger than the table's
        ctl.observe(row, bits)
        sent.append(bits)
        used.add(row.setting.m_s)
    return np.array(sent), used


def test_controller_holds_the_budget_by_moving_between_settings():
    ctl = RateController(_table(), budget_kbps=25.0, fps=10.0)
    sent, used = _drive(ctl)
    assert abs(sent.mean() * 10 / 1000 / 25.0 - 1) < 0.05
    assert len(used) >= 2  # time sharing: no single setting sits at 2500 bits per frame
    assert ctl.scale == pytest.approx(1.25, rel=0.1)  # learned that these frames are larger


def test_dominated_settings_are_never_chosen():
    assert Setting(0.5, 0.2, 1024, 1024) not in [r.setting for r in _table().pareto()]


def test_loss_reports_lower_the_budget_and_clean_ones_restore_it():
    ctl = RateController(_table(), budget_kbps=25.0, fps=10.0)
    ctl.feedback(0.4)
    assert ctl.effective_kbps == pytest.approx(25.0 * 0.8)
    for _ in range(10):
        ctl.feedback(0.0)
    assert ctl.effective_kbps == pytest.approx(25.0)
    ctl.feedback(float("nan"))  # a garbled report changes nothing
    assert ctl.effective_kbps == pytest.approx(25.0)


def _bottleneck(ctl, link_kbps, seconds=60.0, fps=10.0, queue_s=1.0, feedback=True):
    """Frames at `fps` into a link that passes `link_kbps` through a tail-drop queue of `queue_s` seconds
    (the LinkShaper's shape); the RSU reports each second the loss share and the rate that arrived.
    Returns the kbit/s offered and the share of bits dropped, both over the last 20 s."""
    cap = 1000.0 * link_kbps * queue_s
    queue, arrived, dropped, t, log = 0.0, 0.0, 0.0, 0.0, []
    next_report = 1.0
    while t < seconds:
        row = ctl.choose()
        ctl.observe(row, row.bits, t)
        lost = max(0.0, queue + row.bits - cap) if row.bits > 0 else 0.0
        queue += row.bits - lost
        dropped += lost
        log.append((t, row.bits, lost))
        t += 1.0 / fps
        out = min(queue, 1000.0 * link_kbps / fps)
        queue -= out
        arrived += out
        if t >= next_report:
            if feedback:
                ctl.feedback(dropped / max(1.0, arrived + dropped), arrived / 1000.0, t)
            arrived, dropped, next_report = 0.0, 0.0, next_report + 1.0
    tail = [(b, lost) for ts, b, lost in log if ts >= seconds - 20]
    return sum(b for b, _ in tail) / 20 / 1000, sum(lost for _, lost in tail) / sum(b for b, _ in tail)


def test_a_bottleneck_below_the_budget_brings_the_rate_down_to_what_it_passes():
    blind = RateController(_table(), budget_kbps=40.0, fps=10.0)
    rate, lost = _bottleneck(blind, link_kbps=25.0, feedback=False)
    assert rate == pytest.approx(40.0, rel=0.1) and lost > 0.3  # without reports: a third of it dropped
    ctl = RateController(_table(), budget_kbps=40.0, fps=10.0)
    rate, lost = _bottleneck(ctl, link_kbps=25.0)
    assert ctl.congested_reports >= 1
    assert 0.7 * 25.0 <= rate <= 1.1 * 25.0 and lost < 0.05
    free = RateController(_table(), budget_kbps=40.0, fps=10.0)
    rate, lost = _bottleneck(free, link_kbps=100.0)
    assert rate == pytest.approx(40.0, rel=0.1) and lost == 0
    assert free.congested_reports == 0


def test_a_budget_below_the_cheapest_setting_sends_the_cheapest():
    ctl = RateController(_table(), budget_kbps=1.0, fps=10.0)
    sent, used = _drive(ctl, 50)
    assert used == {0.1}


def test_table_round_trip_and_bad_tables(tmp_path):
    t = _table()
    t.save(tmp_path / "t.json")
    back = RateTable.load(tmp_path / "t.json")
    assert back.rows == t.rows and back.model_id == t.model_id
    (tmp_path / "bad.json").write_text('{"rows": [{"m_x": 1}]}')
    with pytest.raises(ValueError, match="bad.json"):
        RateTable.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="budget"):
        RateController(t, 0, 10)


def test_the_oracle_sends_exactly_what_the_stream_encoder_sends(small_codec):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (64, 128)).astype(np.uint8)
    pk = Packetizer(small_codec.priors_x, small_codec.priors_s, small_codec.model_id, vehicle_id=1)
    o = FrameOracle(small_codec, img, lab, pk)
    for s in (Setting(0.5, 0.5, 1024, 1024), Setting(0.1, 0.7, 1024, 1024), Setting(1.0, 0.05, 1024, 1024)):
        enc = StreamEncoder(small_codec, 1, m_x=s.m_x, m_s=s.m_s, first_seq=0).encode(img, lab)
        assert o.bits(s) == 8 * enc.bytes_total
        dec = small_codec.decode(small_codec.encode(img, lab, s.m_x, s.m_s).data)
        assert np.array_equal(o.s_hat(s.m_s, s.j_s)[1], dec.labels)


def test_a_vehicle_slower_than_the_camera_spends_the_budget_on_the_frames_it_sends():
    table = RateTable([TableRow(Setting(m, m, 1024, 1024), bits, m, 20) for m, bits in
                       ((0.1, 1500), (0.2, 2500), (0.3, 5000), (0.5, 10000), (0.7, 15000))], 0x1234, 8, 256 * 512)
    ctl = RateController(table, budget_kbps=25.0, fps=10.0)
    t, sent = 0.0, []
    for _ in range(200):  # the encoder keeps up with 2.5 of the camera's 10 frames a second
        row = ctl.choose()
        ctl.observe(row, row.bits, t)
        sent.append(row.bits)
        t += 0.4
    assert ctl.frame_rate == pytest.approx(2.5)
    assert sum(sent[100:]) / (100 * 0.4) / 1000 == pytest.approx(25.0, rel=0.1)  # not 25 / 4


def test_report_jitter_on_a_clean_link_is_not_taken_for_congestion():
    ctl = RateController(_table(), budget_kbps=25.0, fps=10.0)
    rng = np.random.default_rng(1)
    t, pending = 0.0, []  # (arrival time at the RSU, bits)
    report_at = 1.0
    for _ in range(600):
        row = ctl.choose()
        ctl.observe(row, row.bits, t)
        pending.append((t + rng.uniform(0.0, 0.6), row.bits))  # up to 0.6 s of delay and jitter, nothing lost
        t += 0.1 * rng.uniform(0.5, 1.5)
        if t >= report_at:
            got = sum(b for a, b in pending if a <= report_at)
            pending = [(a, b) for a, b in pending if a > report_at]
            ctl.feedback(0.0, got / 1000.0, t)  # read at the next frame after the report was sent
            report_at += 1.0
    assert ctl.congested_reports == 0 and ctl.effective_kbps == pytest.approx(25.0)
