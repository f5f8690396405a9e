"""GET /healthz: database, broker and worker status, in a few ms: workers are known from
their heartbeat keys in Redis, not by pinging them."""
from __future__ import annotations

from flask import Blueprint, jsonify

from gazelab import broker, db
from webapp import get_config

bp = Blueprint("health", __name__)


def _check(fn) -> dict:
    try:
        return {"ok": True, **(fn() or {})}
    except Exception as exc:  # any failure is a status to report, not a crash
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _workers(url: str) -> dict:
    names = broker.live_workers(url)
    if not names:
        raise RuntimeError(f"no Celery worker has reported in the last {broker.HEARTBEAT_TTL_S} s")
    return {"workers": names}


@bp.get("/healthz")
def healthz():
    config = get_config()
    database = _check(lambda: db.ping(config.database_url))
    url = broker.broker_url(config)
    broker_status = _check(lambda: broker.ping(url))
    worker = _check(lambda: _workers(url)) if broker_status["ok"] else {"ok": False, "error": "broker down"}
    ok = database["ok"] and broker_status["ok"] and worker["ok"]
    body = {"status": "ok" if ok else "degraded", "database": database,
            "broker": broker_status, "worker": worker}
    return jsonify(body), 200 if database["ok"] else 503
