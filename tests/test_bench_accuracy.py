"""`gazelab bench accuracy` at a small N on the virtual volunteer (issue #13): one JSON object
with the training styles' block and the held-out style's block side by side, every variant
cross-validated on the same folds, and the held-out style's volunteers never trained on."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from simulator.styles import HELD_OUT_STYLE, STYLES


@pytest.mark.slow
def test_bench_accuracy_reports_the_held_out_style_apart(gz):
    from gazelab_cli import cli
    volunteers = len(STYLES) + 1   # one of each style, the held-out one included, and one more
    outcome = CliRunner(env=gz.env).invoke(cli, [
        "bench", "accuracy", "--volunteers", str(volunteers), "--samples", "45", "--folds", "2",
        "--epochs", "1", "--models", "gaze_ray,direct", "--json"])
    assert outcome.exit_code == 0, outcome.output[-3000:]
    report = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert report["model"] == "gaze_ray" and set(report["variants"]) == {"gaze_ray", "direct"}
    assert report["styles"][HELD_OUT_STYLE] == 1 and sum(report["styles"].values()) == volunteers
    held = report["held_out_style"]
    assert held["style"] == HELD_OUT_STYLE and held["volunteers"] == 1
    for block in (report, held):
        for regime, methods in (("zero_shot", ("model", "centre", "mean", "ridge_general")),
                                ("calibrated_9", ("model", "webgazer_style", "eyetrax_style"))):
            assert set(block[regime]) == set(methods)
            assert block[regime]["model"]["mean_px"] > 0
        limits = block["calibration_limits"]
        assert limits["all_frames_fit_px"] > 0 and limits["trial_bias_px"] > 0 and limits["within_trial_scatter_px"] >= 0
        assert set(block["goals"]) == {"calibrated_upper_ci_le_0.6_webgazer_style", "zero_shot_model_le_0.5_centre"}
    held_out_ids = {row["volunteer_id"] for row in report["per_volunteer"] if row["style"] == HELD_OUT_STYLE}
    assert len(held_out_ids) == 1 and all(row["held_out"] == (row["volunteer_id"] in held_out_ids)
                                          for row in report["per_volunteer"])
    for trained in report["trained_on"]:
        assert trained and not held_out_ids & set(trained)
    tested = [volunteer for fold in report["split"] for volunteer in fold]
    assert sorted(tested) == sorted(row["volunteer_id"] for row in report["per_volunteer"])
    for variant in report["variants"].values():
        assert variant["held_out_style"]["zero_shot"]["volunteers"] == 1
        assert 0 < variant["parameters"] <= 2_000_000 and variant["train_samples_per_s"] > 0
    assert 0 < report["infer_ms_batch1_cpu"] and report["parameters"] == report["variants"]["gaze_ray"]["parameters"]
    # which kind of CPU the figures came from (they reproduce to the last digit only on the same kind)
    assert report["torch_cpu_capability"] and report["cpu_threads"] >= 1
