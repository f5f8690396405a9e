"""`gazelab bench ingest` at a small load: a real server started and fed, one JSON object
with the floor measured before and after the load, every frame stored."""
from __future__ import annotations

import json

from click.testing import CliRunner


def test_bench_ingest_stores_every_frame_and_prints_its_floor():
    from gazelab_cli import cli
    outcome = CliRunner().invoke(cli, ["bench", "ingest", "--volunteers", "2", "--seconds", "3", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output.strip().splitlines()[-1])
    assert report["frames_sent"] == report["frames_stored"] > 0
    assert (report["lost_frames"], report["errors"]) == (0, 0)
    before, after = report["floor_cpu_ms_before"], report["floor_cpu_ms_after"]
    floor = report["floor_cpu_ms_per_frame"]
    assert before > 0 and after > 0 and abs(floor - (before + after) / 2) < 0.002
    assert abs(report["floor_fps"] - report["cpu_count"] * 1000 / floor) < 0.2
    assert 0 < report["efficiency"] < 1 and report["server_cpu_ms_per_frame"] > 0
    # at this small load the machine idles most of the time; what else ran is accounted, >= 0 up to rounding
    assert 0 < report["machine_idle_fraction"] < 1 and report["other_cpu_ms_per_frame"] > -0.5
