"""Two nodes, each a web server and a Celery worker with its own data dir, sharing one
database (PostgreSQL when GAZELAB_TEST_DATABASE_URL is set, else one SQLite file), one Redis
and one S3-compatible object store (moto's standalone S3 server over HTTP). Volunteers upload
through both web servers, a run queued on node B trains on whichever worker takes it, node A
promotes it, an export written by a worker downloads from either web server, and an erasure
on node A removes the export from the bucket and the snapshots from both nodes' data dirs."""
from __future__ import annotations

import io
import re
import shutil
import threading
import time
import zipfile

import pytest
import requests
from sqlalchemy import func, select

from collection.accounts import create_admin
from gazelab import broker
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR
from gazelab.schema import ExportJob, Sample
from gazelab_cli.benchmarks.ingest import VolunteerStats, render_frames, run_volunteer
from tests.conftest import EXTERNAL_BROKER, EXTERNAL_DB
from tests.support import GazeEnv, WebServer, Worker, create_postgres_database, free_port, short_tmpdir, wait_until

BUCKET = "gazelab-test"
AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_server(monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer
    for key, value in AWS.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


@pytest.fixture
def cluster(request, s3_server, redis_url):
    endpoint, _ = s3_server
    shared = short_tmpdir("gzdb")
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    if EXTERNAL_DB:
        database_url, drop = create_postgres_database(EXTERNAL_DB)
        request.addfinalizer(drop)
    else:
        database_url = f"sqlite:///{shared}/gazelab.db"
    broker_url = EXTERNAL_BROKER or redis_url
    if EXTERNAL_BROKER:
        broker.redis_client(EXTERNAL_BROKER).flushdb()   # no stale tasks from earlier tests
    overrides = {"GAZELAB_SERVER_BLOB_URL": f"s3://{BUCKET}/blobs?endpoint_url={endpoint}", **AWS}
    nodes = []
    for _ in range(2):
        data_dir = short_tmpdir("gzn")
        request.addfinalizer(lambda d=data_dir: shutil.rmtree(d, ignore_errors=True))
        nodes.append(GazeEnv(data_dir, database_url, broker_url, overrides))
    nodes[0].migrate()
    services = []
    for node in nodes:
        services += [WebServer(node).start(), Worker(node).start()]
    for service in services:
        request.addfinalizer(service.stop)
    with session_scope(database_url) as db:
        create_admin(db, "admin", "multi-node-password")
    return nodes, services[0::2], services[1::2]


def _admin(web: WebServer) -> requests.Session:
    http = requests.Session()
    http.post(f"{web.url}/admin/login", data={"name": "admin", "password": "multi-node-password",
                                              "csrf_token": _csrf(http, f"{web.url}/admin/login")})
    assert "Log out" in http.get(f"{web.url}/admin/").text
    return http


def _csrf(http: requests.Session, url: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', http.get(url).text).group(1)


def _snapshot_files(node: GazeEnv) -> list[str]:
    """Files of the node's shard store that hold training data (not its lock or markers)."""
    folder = node.data_dir / SNAPSHOT_DIR
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.glob("*/*/*") if p.is_file())


def test_two_nodes_share_database_redis_and_blob_store(cluster, s3_server):
    nodes, webs, workers = cluster
    _, s3 = s3_server
    consent = nodes[0].config.server.consent_version

    # ---- collect: four virtual volunteers, two through each web server (one of each pair
    # sends a dot's frames in batches of 4, the other one by one) ----
    frames = render_frames(4, per_volunteer=20, seed=3)
    stats = [VolunteerStats() for _ in frames]
    start_at = time.time() + 0.5
    threads = [threading.Thread(target=run_volunteer, args=(webs[i % 2].url, consent, frames[i], 10.0, 3.0,
                                                            start_at, stats[i], 1 if i < 2 else 4))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [(s.sent, s.stored, s.lost, s.errors) for s in stats] == [(30, 30, 0, 0)] * 4
    with session_scope(nodes[0].database_url) as db:
        accepted = db.scalar(select(func.count()).select_from(Sample).where(Sample.status == "accepted"))
    assert accepted >= 80

    # ---- train: queued on node B, trained by whichever worker takes it ----
    admin_a, admin_b = _admin(webs[0]), _admin(webs[1])
    queued = admin_b.post(f"{webs[1].url}/admin/runs", allow_redirects=False, data={
        "epochs": "3", "batch_size": "32", "csrf_token": _csrf(admin_b, f"{webs[1].url}/admin/runs")})
    assert queued.status_code == 302, queued.text
    run_id = int(queued.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    summary = wait_until(lambda: (s := admin_a.get(f"{webs[0].url}/admin/api/runs/{run_id}").json())["status"]
                         in ("done", "failed") and s, 240, 0.5,
                         f"run {run_id}\n{workers[0].log()[-2000:]}\n{workers[1].log()[-2000:]}")
    assert summary["status"] == "done", summary["error"]
    assert [bool(_snapshot_files(node)) for node in nodes].count(True) == 1   # the trainer's own cache

    # ---- promote on node A; node B sees it ----
    promoted = admin_a.post(f"{webs[0].url}/admin/runs/{run_id}/promote", allow_redirects=False,
                            data={"csrf_token": _csrf(admin_a, f"{webs[0].url}/admin/runs/{run_id}")})
    assert promoted.status_code == 302
    assert admin_b.get(f"{webs[1].url}/admin/api/runs/{run_id}").json()["active"] is True

    # ---- export: asked on node A, written by a worker into the bucket, downloaded from node B ----
    asked = admin_a.post(f"{webs[0].url}/admin/exports", allow_redirects=False, data={
        "status": "accepted", "csrf_token": _csrf(admin_a, f"{webs[0].url}/admin/export")})
    assert asked.status_code == 302
    with session_scope(nodes[0].database_url) as db:
        job_id = db.scalar(select(func.max(ExportJob.id)))

    def finished() -> bool:
        with session_scope(nodes[0].database_url) as db:
            return db.get(ExportJob, job_id).status in ("done", "failed")
    wait_until(finished, 120, 0.3, "export job")
    download = admin_b.get(f"{webs[1].url}/admin/exports/{job_id}.zip")
    assert download.status_code == 200, download.text
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert len(archive.read("positions.csv").decode().strip().splitlines()) == 1 + accepted
    assert len([n for n in archive.namelist() if n.startswith("face/")]) == accepted
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("blobs/exports/gazelab-accepted-")
    for node in nodes:   # nothing of it left on either node's disk
        exports = node.data_dir / "exports"
        assert not exports.is_dir() or not any(exports.iterdir())

    # ---- erase a volunteer on node A: the bucket and both nodes' snapshots are emptied ----
    erased = admin_a.post(f"{webs[0].url}/admin/volunteers/{stats[1].volunteer_id}/delete",
                          allow_redirects=False,
                          data={"csrf_token": _csrf(admin_a, f"{webs[0].url}/admin/review")})
    assert erased.status_code == 302, erased.text
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    wait_until(lambda: not any(_snapshot_files(node) for node in nodes), 30, 0.5,
               "both nodes to drop their snapshots")
    assert admin_b.get(f"{webs[1].url}/admin/exports/{job_id}.zip").status_code == 404
