"""The accuracy protocol (issue #12): grouped k-fold by volunteer, calibration frames
never scored, the personal calibration, the eyetrax-style peer on stored landmarks, and
migration 0004 on a database whose samples have no landmarks."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import inspect, text, update

from gazelab import migrate
from gazelab.db import get_engine, session_scope
from gazelab.schema import RunFigure, SampleImages, TrainingRun
from tests.test_admin import admin_client  # noqa: F401 (a fixture)
from tests.trainer_data import add_samples, fast_params
from trainer import evaluate, runs
from trainer.snapshot import kfold, load_snapshot
from trainer.train import TrainParams, train


def _snapshot(gz):
    with session_scope(gz.config.database_url) as db:
        return load_snapshot(db, 64)


@pytest.mark.parametrize("volunteers,sessions,folds", [(7, 1, 3), (10, 1, 5), (2, 3, 3)])
def test_folds_never_share_a_volunteer(gz, volunteers, sessions, folds):
    add_samples(gz, volunteers, 4 * sessions, sessions)
    snapshot = _snapshot(gz)
    layouts = kfold(snapshot, folds, 0.2, seed=3)
    by = "volunteer" if volunteers >= 3 else "session"
    keys = snapshot.volunteer_ids if by == "volunteer" else snapshot.session_ids
    tested = [g for layout in layouts for g in layout["groups"]["test"]]
    assert len(layouts) == folds and sorted(tested) == sorted(set(keys))  # each exactly once
    for layout in layouts:
        assert layout["by"] == by and all(layout["sizes"].values())
        parts = {name: set(keys[idx]) for name, idx in layout["indices"].items()}
        assert not parts["test"] & (parts["train"] | parts["validation"])
        assert not parts["train"] & parts["validation"]
        assert sum(layout["sizes"].values()) == len(snapshot)
    again = kfold(snapshot, folds, 0.2, seed=3)
    assert [a["groups"] for a in again] == [b["groups"] for b in layouts]


def test_cross_validated_run_scores_no_calibration_frame(gz, client):
    add_samples(gz, volunteers=6, samples_per_volunteer=24, seed=0)
    with session_scope(gz.config.database_url) as db:
        from trainer.synthetic import insert_dataset
        insert_dataset(db, 3, 24, seed=1, calibration_frames=2)
        run_id = runs.create_run(db, fast_params(epochs=2, folds=3), gz.config).id
    assert runs.execute_run(gz.config, run_id) == "done"
    snapshot = _snapshot(gz)
    calibration = snapshot.trial_kinds == "calibration"
    assert calibration.sum() == 3 * 9 * 2
    with session_scope(gz.config.database_url) as db:
        run = db.get(TrainingRun, run_id)
        metrics, split = run.metrics, run.split
        figures = {f.name for f in db.query(RunFigure).filter_by(run_id=run_id)}
    table = metrics["per_volunteer"]
    assert len(table) == 9 and sum(row["frames_scored"] for row in table) == (~calibration).sum()
    assert metrics["crossval"]["folds"] == 3 and len(split["folds"]) == 3
    assert metrics["crossval"]["calibrated_9"]["model"]["volunteers"] == 3   # only they calibrated
    zero = metrics["crossval"]["zero_shot"]["model"]
    assert zero["volunteers"] == 9 and zero["ci95"][0] <= zero["mean_px"] <= zero["ci95"][1]
    assert {"error_heatmap_zero_shot", "error_heatmap_calibrated_9"} <= figures
    # the single-split test metrics skip calibration frames too
    test = np.isin(snapshot.volunteer_ids, split["groups"]["test"])
    assert metrics["test"]["model"]["n"] == (test & ~calibration).sum()

    # the run page shows both regimes with the peers, the per-volunteer table and both heatmaps
    from tests.test_admin import login, make_admin
    make_admin(gz.database_url)
    assert login(client).status_code == 302
    html = client.get(f"/admin/runs/{run_id}").get_data(as_text=True)
    assert 'id="crossval"' in html and "WebGazer-style" in html and "eyetrax-style" in html
    assert html.count('data-regime="zero_shot"') == 4 and html.count('data-regime="calibrated_9"') == 3
    assert 'id="per-volunteer"' in html and table[0]["volunteer_id"][:8] in html
    limits = metrics["crossval"]["calibration_limits"]
    assert 'id="calibration-limits"' in html and f'{limits["trial_bias_px"]:.0f} px from the dot' in html
    assert 'id="fig-error_heatmap_zero_shot"' in html and 'id="fig-error_heatmap_calibrated_9"' in html


def _offset_fold(gz, offset):
    """Six ordinary volunteers to train on, one test volunteer with a personal offset."""
    add_samples(gz, volunteers=6, samples_per_volunteer=60, seed=0)
    with session_scope(gz.config.database_url) as db:
        from trainer.synthetic import insert_dataset
        insert_dataset(db, 1, 60, seed=7, calibration_frames=3, offset=offset)
    snapshot = _snapshot(gz)
    person = snapshot.volunteer_ids == snapshot.volunteer_ids[-1]
    others = np.flatnonzero(~person)
    layout = {"by": "volunteer", "indices": {"train": others[:300], "validation": others[300:],
                                             "test": np.flatnonzero(person)}}
    params = TrainParams.from_config(gz.config, epochs=8, batch_size=32, learning_rate=0.003, device="cpu")
    result = train(snapshot, params, split=layout)
    return snapshot, layout, evaluate.fold_errors(snapshot, layout, result.test_pred, result.test_features)


def test_personal_calibration_reduces_error_for_a_personal_offset(gz):
    snapshot, layout, fold = _offset_fold(gz, offset=(0.15, -0.12))
    assert not np.isin(fold["indices"], np.flatnonzero(snapshot.trial_kinds == "calibration")).any()
    zero, calibrated = fold["zero_shot"]["model"].mean(), fold["calibrated_9"]["model"].mean()
    assert calibrated < 0.75 * zero, (zero, calibrated, fold["calibration_reports"])
    assert fold["calibration_reports"][0]["kept"] == "ridge" and fold["calibration_reports"][0]["trials"] == 9
    # fitted on every frame of the person (its own scored frames included) the same mapping does better
    assert np.isfinite(fold["all_frames_fit"]).all() and fold["all_frames_fit"].mean() < calibrated


def test_calibration_limits_split_the_error_into_each_dots_bias_and_the_frames_scatter():
    from types import SimpleNamespace
    # two dots on a 1000 × 500 screen, two frames each: dot one's frames 30 px either side of
    # a point 40 px off it; dot two's frames on it
    snapshot = SimpleNamespace(trial_ids=np.array([1, 1, 2, 2]), screens=np.full((4, 2), (1000.0, 500.0)),
                               targets=np.array([[0.5, 0.5]] * 2 + [[0.2, 0.2]] * 2))
    pred = np.array([[0.54, 0.56], [0.54, 0.44], [0.2, 0.2], [0.2, 0.2]])
    limits = evaluate.calibration_limits(snapshot, np.arange(4), pred, np.array([1.0, 2.0, 3.0, 4.0]))
    assert limits == pytest.approx({"trial_bias_px": 20.0, "within_trial_scatter_px": 15.0, "all_frames_fit_px": 2.5})
    nothing = evaluate.calibration_limits(snapshot, np.arange(4), np.full((4, 2), np.nan), np.full(4, np.nan))
    assert nothing == {"trial_bias_px": None, "within_trial_scatter_px": None, "all_frames_fit_px": None}


def test_eyetrax_style_peer_reads_the_stored_landmarks(gz):
    add_samples(gz, volunteers=4, samples_per_volunteer=20, seed=2)
    with session_scope(gz.config.database_url) as db:
        from trainer.synthetic import insert_dataset
        insert_dataset(db, 2, 20, seed=3, calibration_frames=2)
    snapshot = _snapshot(gz)
    assert np.isfinite(snapshot.landmarks).all()
    test = np.flatnonzero(snapshot.trial_kinds == "calibration")
    layout = {"indices": {"train": np.flatnonzero(np.isin(snapshot.volunteer_ids, snapshot.volunteer_ids[:80])),
                          "validation": np.array([], int),
                          "test": np.flatnonzero(np.isin(snapshot.session_ids, snapshot.session_ids[test]))}}
    n = len(layout["indices"]["test"])
    with_landmarks = evaluate.fold_errors(snapshot, layout, np.full((n, 2), 0.5), np.zeros((n, 4)))
    assert np.isfinite(with_landmarks["calibrated_9"]["eyetrax_style"]).all()

    # without the stored landmarks the peer has nothing to fit on; the eye-patch peer still works
    with session_scope(gz.config.database_url) as db:
        db.execute(update(SampleImages).values(landmarks=None))
        db.commit()
        bare = load_snapshot(db, 64)
    without = evaluate.fold_errors(bare, layout, np.full((n, 2), 0.5), np.zeros((n, 4)))
    assert np.isnan(without["calibrated_9"]["eyetrax_style"]).all()
    assert np.isfinite(without["calibrated_9"]["webgazer_style"]).all()


def test_migration_0004_upgrades_a_database_with_samples_without_landmarks(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    migrate.upgrade(url, "0002")
    now = dt.datetime(2026, 1, 1)
    with get_engine(url).begin() as connection:
        connection.execute(text("INSERT INTO volunteers (id, created_at, consent_version, consented_at, source) "
                                "VALUES ('v1', :t, 'c', :t, 'browser')"), {"t": now})
        connection.execute(text(
            "INSERT INTO collection_sessions (id, volunteer_id, token_hash, screen_width, screen_height, "
            "device_pixel_ratio, user_agent, started_at, status) VALUES ('s1', 'v1', 'h', 800, 600, 1, '', :t, "
            "'finished')"), {"t": now})
        connection.execute(text(
            "INSERT INTO samples (id, session_id, volunteer_id, client_frame_id, captured_at, received_at, "
            "target_x, target_y, quality, status, reasons) VALUES (1, 's1', 'v1', 'f1', :t, :t, 10, 20, '{}', "
            "'accepted', '')"), {"t": now})
        connection.execute(text("INSERT INTO sample_images (sample_id, format, face, face_aligned, l_eye, r_eye, "
                                "head_pos) VALUES (1, 'png', x'00', x'00', x'00', x'00', x'00')"))
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision() and migrate.schema_drift(url) == []
    assert "session_calibrations" in inspect(get_engine(url)).get_table_names()
    with get_engine(url).connect() as connection:
        row = connection.execute(text("SELECT sample_id, format, landmarks FROM sample_images")).one()
    assert tuple(row) == (1, "png", None)


def test_worker_fits_session_calibrations_and_inference_uses_them(gz, worker):
    from gazelab.celery_app import FIT_CALIBRATIONS_TASK, make_celery
    from gazelab.schema import ModelArtifact, SessionCalibration
    from tests.support import wait_until
    from trainer.inference import load_predictor, sample_inputs
    from trainer.personal import calibration_frames

    add_samples(gz, volunteers=6, samples_per_volunteer=60, seed=0)
    with session_scope(gz.config.database_url) as db:
        from trainer.synthetic import insert_dataset
        insert_dataset(db, 1, 40, seed=7, calibration_frames=3, offset=(0.15, -0.12))
        run_id = runs.create_run(db, fast_params(epochs=8, test_fraction=0.1), gz.config).id
    assert runs.execute_run(gz.config, run_id) == "done"
    with session_scope(gz.config.database_url) as db:
        artifact_id = db.query(ModelArtifact).filter_by(run_id=run_id).one().id
        runs.promote(db, artifact_id)

    celery = make_celery(gz.config, "test-client")
    try:
        celery.send_task(FIT_CALIBRATIONS_TASK, kwargs={"artifact_id": artifact_id})
    finally:
        celery.close()
    url = gz.config.database_url

    def fitted():
        with session_scope(url) as db:
            return db.query(SessionCalibration).filter_by(artifact_id=artifact_id).all()
    wait_until(lambda: len(fitted()) == 1, 120, what=f"calibration fit\n{worker.log()[-2000:]}")
    record = fitted()[0]
    assert record.metrics["trials"] == 9 and record.metrics["kept"] == "ridge"

    from gazelab.schema import Sample, SampleImages
    with session_scope(url) as db:
        predictor = load_predictor(db)
        mapping = predictor.calibration(db, record.session_id)
        calibration_ids = {s.id for s, _ in calibration_frames(db, record.session_id)}
        rows = [(s, i) for s, i in db.query(Sample, SampleImages).join(SampleImages)
                .filter(Sample.session_id == record.session_id) if s.id not in calibration_ids]
        session = rows[0][0].session
        screen = np.array([session.screen_width, session.screen_height])
    inputs = [sample_inputs(s, i, session) for s, i in rows]
    targets = np.array([[s.target_x, s.target_y] for s, _ in rows])
    zero = np.linalg.norm(predictor.predict(inputs) * screen - targets, axis=1).mean()
    calibrated = np.linalg.norm(predictor.predict(inputs, mapping) * screen - targets, axis=1).mean()
    assert mapping is not None and calibrated < 0.8 * zero, (zero, calibrated)


def test_admin_sessions_page_shows_validation_accuracy_and_filters_by_verdict(gz, client):
    from gazelab.schema import CollectionSession, ModelArtifact, SessionCalibration, Volunteer
    from tests.test_admin import login, make_admin
    with session_scope(gz.database_url) as db:
        artifact = ModelArtifact(weights=b"", architecture={}, is_active=True)
        db.add(artifact)
        for name, mean_px in (("good", 90.0), ("poor", 420.0), ("unmeasured", None)):
            volunteer = Volunteer(id=name, consent_version="v")
            session = CollectionSession(id=f"s-{name}", volunteer=volunteer, token_hash="h",
                                        screen_width=1280, screen_height=720, mm_per_px=0.25)
            db.add_all([volunteer, session])
            db.flush()
            if mean_px is not None:
                validation = {"available": True, "dots": 5, "frames": 20, "mean_px": mean_px, "mean_cm": mean_px / 40,
                              "mean_deg": 1.5, "precision_px": 12.0, "calibrated": True,
                              "passed": mean_px <= gz.config.collection.validation_pass_px}
                db.add(SessionCalibration(session_id=session.id, artifact_id=artifact.id, mapping={},
                                          metrics={"kept": "ridge", "validation": validation}))
        db.commit()
    make_admin(gz.database_url)
    assert login(client).status_code == 302
    html = client.get("/admin/sessions").get_data(as_text=True)
    assert 'data-verdict="passed"' in html and 'data-verdict="failed"' in html and 'data-verdict="none"' in html
    assert "90 px · 2.2 cm · 1.5°" in html and "not measured" in html
    failed = client.get("/admin/sessions?validation=failed").get_data(as_text=True)
    assert 'data-session="s-poor"' in failed and 'data-session="s-good"' not in failed
    assert client.get("/admin/sessions?validation=maybe").status_code == 400

    # a session's calibration (fitted from their frames) goes when the volunteer is erased
    from collection.erasure import delete_volunteer
    with session_scope(gz.database_url) as db:
        delete_volunteer(db, gz.config, "poor")
        assert {c.session_id for c in db.query(SessionCalibration)} == {"s-good"}


def test_calibration_reads_the_eye_patches_and_refuses_stale_or_foreign_mappings():
    from trainer import calibration
    from trainer.eye_patches import SIZE, from_crops
    rng = np.random.default_rng(0)
    eyes = rng.integers(0, 256, (2, 36, 64, 64, 3), dtype=np.uint8)
    patches = from_crops(*eyes)
    assert patches.shape == (36, SIZE) and 0.0 <= patches.min() and patches.max() <= 1.0
    # where the person's eyes make the general model err, their patches tell the correction
    outputs = rng.uniform(0.2, 0.8, (36, 2))
    targets = outputs + 0.3 * (patches[:, :2] - 0.5)
    trials = np.repeat(np.arange(9), 4)
    screens = np.tile([1600.0, 900.0], (36, 1))
    x = calibration.inputs(np.zeros((36, 8)), patches)
    mapping, report = calibration.fit(outputs, x, targets, trials, screens)
    assert report["kept"] == "ridge" and report["loto_px"] < report["uncorrected_px"]
    stored = calibration.Calibration.from_dict(mapping.as_dict())
    assert np.allclose(stored.apply(outputs, x), mapping.apply(outputs, x))
    # fitted on other inputs (before the patches), or under another model: not applied
    assert calibration.Calibration.from_dict({k: v for k, v in mapping.as_dict().items() if k != "inputs"}) is None
    with pytest.raises(calibration.CalibrationMismatch):
        mapping.apply(outputs, np.zeros((36, 8)))
    with pytest.raises(ValueError):
        calibration.Calibration.from_dict({**mapping.as_dict(), "weights": [[0.0, 0.0]]})


def test_live_tracking_answers_a_stale_or_foreign_calibration_with_409(gz, admin_client):
    import io
    import json
    from gazelab.schema import ModelArtifact
    from tests.images import frame, jpeg
    from tests.test_admin import page_csrf
    from trainer.artifacts import weights_bytes
    from trainer.calibration import Calibration
    from trainer.models import build_model
    spec = {"name": "compact", "inputs": "full", "image_size": 64}
    stats = {kind: {"mean": [128.0] * channels, "std": [64.0] * channels}
             for kind, channels in (("face", 3), ("l_eye", 3), ("r_eye", 3), ("head_pos", 1))}
    with session_scope(gz.database_url) as db:
        db.add(ModelArtifact(weights=weights_bytes(build_model(spec)), architecture=spec, normalisation=stats,
                             error_grid={}, is_active=True))
        db.commit()
    client = admin_client
    headers = {"X-CSRF-Token": page_csrf(client, "/admin/live")}
    picture = jpeg(frame())

    def track(calibration: dict | None):
        data = {"frame": (io.BytesIO(picture), "f.jpg"), "screen_width": "1600", "screen_height": "900"}
        if calibration is not None:
            data["calibration"] = json.dumps(calibration)
        return client.post("/admin/api/live/frame", headers=headers, data=data)
    assert track(None).status_code == 200 and track(None).get_json()["found"]
    foreign = Calibration(np.zeros(10), np.ones(10), np.zeros((11, 2))).as_dict()
    stale = {k: v for k, v in foreign.items() if k != "inputs"}
    for mapping, error in ((foreign, "stale_calibration"), (stale, "stale_calibration"),
                           ({"inputs": foreign["inputs"], "mean": "x"}, "bad_calibration")):
        response = track(mapping)
        assert response.status_code in (400, 409) and response.get_json()["error"] == error, response.get_json()
