"""GET /healthz: database, broker and worker status."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from gazelab import broker, db
from webapp import get_config

bp = Blueprint("health", __name__)


def _check(fn) -> dict:
    try:
        return {"ok": True, **(fn() or {})}
    except Exception as exc:  # any failure is a status to report, not a crash
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _workers() -> dict:
    celery = current_app.extensions["celery"]
    replies = celery.control.ping(timeout=1.0) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise RuntimeError("no Celery worker answered")
    return {"workers": names}


@bp.get("/healthz")
def healthz():
    config = get_config()
    database = _check(lambda: db.ping(config.database_url))
    broker_status = _check(lambda: broker.ping(broker.broker_url(config)))
    worker = _check(_workers) if broker_status["ok"] else {"ok": False, "error": "broker down"}
    ok = database["ok"] and broker_status["ok"] and worker["ok"]
    body = {"status": "ok" if ok else "degraded", "database": database,
            "broker": broker_status, "worker": worker}
    return jsonify(body), 200 if database["ok"] else 503
