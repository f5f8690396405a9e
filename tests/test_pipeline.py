"""The whole pipeline on every configured database and broker: virtual volunteers through the
real ingest path (simulator → extraction → database), a retrain on a real Celery worker,
promotion, and inference with the stored artifact. With GAZELAB_TEST_DATABASE_URL and
GAZELAB_TEST_BROKER_URL set this runs on PostgreSQL + external Redis as well."""
from __future__ import annotations

import shutil

import pytest

from gazelab import broker
from gazelab.celery_app import make_celery
from gazelab.db import session_scope
from gazelab.schema import ModelArtifact, Sample, SampleImages, TrainingRun
from simulator.demo import run_demo
from tests.conftest import BROKERS, DATABASES, EXTERNAL_BROKER, EXTERNAL_DB
from tests.support import GazeEnv, Worker, create_postgres_database, short_tmpdir, wait_until
from trainer import runs
from trainer.inference import load_predictor, sample_inputs

BACKENDS = sorted({(DATABASES[-1], BROKERS[-1]), ("sqlite", "embedded")})


@pytest.fixture(params=BACKENDS, ids=lambda p: f"{p[0]}+{p[1]}")
def stack(request, redis_url):
    database, broker_kind = request.param
    data_dir = short_tmpdir()
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    if database == "postgresql":
        database_url, drop = create_postgres_database(EXTERNAL_DB)
        request.addfinalizer(drop)
    else:
        database_url = f"sqlite:///{data_dir}/gazelab.db"
    if broker_kind == "external":
        broker.redis_client(EXTERNAL_BROKER).flushdb()  # no stale tasks from earlier runs
    gz = GazeEnv(data_dir, database_url, EXTERNAL_BROKER if broker_kind == "external" else redis_url)
    gz.migrate()
    worker = Worker(gz).start()
    request.addfinalizer(worker.stop)
    return gz, worker


def test_simulated_volunteers_to_trained_promoted_model(stack):
    gz, worker = stack
    summary = run_demo(gz.config, volunteers=4, samples=40, seed=7, workers=1)
    assert summary["samples"]["accepted"] >= 120, summary

    celery = make_celery(gz.config, "pipeline-test")
    try:
        with session_scope(gz.database_url) as db:
            run_id = runs.queue_run(db, {"epochs": 4, "batch_size": 32, "device": "cpu",
                                         "error_grid": "4x3"}, gz.config).id
    finally:
        celery.close()
    wait_until(lambda: _run(gz, run_id).status in ("done", "failed"), 240, 0.2,
               f"training run\n{worker.log()}")
    run = _run(gz, run_id)
    assert run.status == "done", (run.error, worker.log()[-3000:])
    assert run.split["by"] in ("volunteer", "session")
    assert run.metrics["test"]["model"]["mean_px"] > 0 and run.metrics["test"]["ridge"]["mean_px"] > 0

    with session_scope(gz.database_url) as db:
        artifact = db.query(ModelArtifact).filter_by(run_id=run_id).one()
        runs.promote(db, artifact.id)
    with session_scope(gz.database_url) as db:
        predictor = load_predictor(db)
        sample, images = db.query(Sample, SampleImages).join(
            SampleImages, SampleImages.sample_id == Sample.id).filter(Sample.status == "accepted").first()
        prediction = predictor.predict([sample_inputs(sample, images)])
    assert prediction.shape == (1, 2) and (abs(prediction) < 3).all()


def _run(gz, run_id: int) -> TrainingRun:
    with session_scope(gz.database_url) as db:
        return db.get(TrainingRun, run_id)
