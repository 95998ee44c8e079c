"""`sqgan bench all` and `sqgan bench classic`: every benchmark as its own process with wall time and
peak memory, and the results page generated from that JSON (never typed by hand)."""
from __future__ import annotations

import json

import pytest

from sqgan_core.cli import main


def test_bench_all_runs_each_benchmark_in_its_own_process_and_writes_the_page(tmp_path, capsys):
    out, page = tmp_path / "results" / "bench_all.json", tmp_path / "results.md"
    rc = main(["bench", "all", "--only", "sim", "--quick", "--json", "-o", str(out), "--page", str(page)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == result
    (entry,) = result["benchmarks"]  # --only: nothing else ran
    assert entry["name"] == "sim" and entry["rc"] == 0 and entry["peak_rss_mb"] > 20
    assert entry["result"]["fps"] > 0 and entry["command"].startswith("sqgan bench sim")
    text = page.read_text()
    assert f"{entry['result']['fps']} fps" in text and "QUICK run" in text
    assert "(codec was not run)" in text and "| sim |" in text


def test_a_failing_benchmark_is_reported_and_fails_the_run(tmp_path, capsys, monkeypatch):
    from ros2_ws import bench_all

    monkeypatch.setattr(bench_all, "_targets", lambda args, bag_out: [("sim", ["bench", "sim", "--frames", "0"])])
    assert main(["bench", "all", "--json", "-o", str(tmp_path / "b.json")]) == 1
    (entry,) = json.loads(capsys.readouterr().out)["benchmarks"]
    assert entry["rc"] == 2 and "--frames" in entry["error"]


@pytest.mark.slow
def test_bench_classic_times_every_codec_at_sqgan_rate(capsys):
    assert main(["bench", "classic", "--frames", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["codecs"]) == {"sqgan", "jpeg", "jpeg2000", "webp", "avif", "hevc", "av1"}
    sq = r["codecs"]["sqgan"]
    for name, c in r["codecs"].items():
        if "unavailable" in c:
            continue
        assert c["encode_ms_p50"] > 0 and c["decode_ms_p50"] > 0
        assert c["bpp"] <= sq["bpp"] * 1.0001 or name == "sqgan"  # matched rate, never above
