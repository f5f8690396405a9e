"""Export: ask a worker for a zip in the reference layout (collection.export), follow its
progress, download the finished file (streamed from the blob store; no request builds a zip)."""
from __future__ import annotations

from flask import Response, current_app, flash, redirect, render_template, request, send_file, url_for
from sqlalchemy import func, select

from collection.export import STATUS_CHOICES, create_job, finished_export
from gazelab.blobs import blob_store
from gazelab.celery_app import EXPORT_TASK
from gazelab.schema import SAMPLE_STATUSES, ExportJob, Sample
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.errors import ApiError

RECENT_JOBS = 20


@bp.get("/export")
def export_page():
    db = get_db()
    counts = dict(db.execute(select(Sample.status, func.count()).group_by(Sample.status)).all())
    jobs = db.scalars(select(ExportJob).order_by(ExportJob.id.desc()).limit(RECENT_JOBS)).all()
    busy = any(job.status in ("queued", "running") for job in jobs)
    return render_template("admin/export.html", counts=counts, statuses=SAMPLE_STATUSES, jobs=jobs,
                           busy=busy, keep_hours=get_config().server.export_keep_hours)


@bp.post("/exports")
def export_start():
    status = request.form.get("status", "accepted")
    if status not in STATUS_CHOICES:
        raise ApiError(400, "bad_status", f"status must be one of {', '.join(STATUS_CHOICES)}")
    db = get_db()
    job = create_job(db, status)
    try:
        current_app.extensions["celery"].send_task(EXPORT_TASK, args=[job.id])
    except Exception:
        job.status, job.error = "failed", "could not reach the broker"
        db.commit()
        raise ApiError(503, "broker_unavailable", "could not queue the export: the broker is unreachable") from None
    flash(f"Export {job.id} queued; this page follows it.")
    return redirect(url_for("admin.export_page"))


@bp.get("/exports/<int:job_id>.zip", defaults={"part": 1})
@bp.get("/exports/<int:job_id>/part<int:part>.zip")
def export_download(job_id: int, part: int):
    job = get_db().get(ExportJob, job_id)
    store = blob_store(get_config())
    found = finished_export(store, job, part)
    if found is None:
        raise ApiError(404, "not_found", f"export {job_id} has no part {part} (not finished, failed or expired)")
    key, name, size = found
    path = store.local_path(key)
    if path is not None:
        return send_file(path, mimetype="application/zip", as_attachment=True, download_name=name,
                         max_age=0, conditional=True, etag=False)
    return Response(store.read_chunks(key), mimetype="application/zip", headers={
        "Content-Length": str(size), "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{name}"'})
