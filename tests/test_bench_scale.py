"""`gazelab bench scale` at a small N: one JSON object with every timing key, the database
really holding that many samples and the summary agreeing with them."""
from __future__ import annotations

import json

from click.testing import CliRunner

KEYS = ("overview", "review_first", "review_deep", "runs", "coverage")


def test_bench_scale_prints_every_key():
    from gazelab_cli import cli
    outcome = CliRunner().invoke(cli, ["bench", "scale", "--samples", "3000", "--runs", "120",
                                       "--repeat", "3", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output.strip().splitlines()[-1])
    for key in KEYS:
        assert 0 < report[f"{key}_p50_ms"] <= report[f"{key}_p95_ms"], key
    assert report["samples"] == 3000 and report["sessions"] == 30 and report["runs"] == 120
    assert report["database"] == "sqlite" and report["db_bytes"] > 3000 * 300
    assert report["build_s"] >= 0 and report["recount_s"] >= 0
    assert "crops" in report and "client" in report
