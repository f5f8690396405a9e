"""Exports: a zip in the reference project's layout, written by a worker (never inside a web
request) and put in the blob store under exports/ (gazelab.blobs: the data dir, a shared
folder or an S3 bucket, so any web node can serve it), with its progress on an ExportJob row.

positions.csv (id, x, y, head_angle, screen_width, screen_height, session, volunteer, yaw,
pitch) and face/, face_aligned/, l_eye/, r_eye/, head_pos/ of <id>.jpg. Rows and crops
are read in batches (yield_per), so memory does not hold the crops; the zip's central
directory (a few hundred bytes per file) is the one part that grows with the dataset.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
import zipfile

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from collection.codec import crop_as_jpeg
from gazelab.blobs import BlobStore, blob_store
from gazelab.config import Config
from gazelab.files import EXPORT_DIR, private_subdir
from gazelab.schema import (CROP_KINDS, SAMPLE_STATUSES, CollectionSession, ExportJob, Sample,
                            SampleImages, utcnow)

BATCH = 200
CSV_COLUMNS = ("id", "x", "y", "head_angle", "screen_width", "screen_height",
               "session", "volunteer", "yaw", "pitch")
STATUS_CHOICES = (*SAMPLE_STATUSES, "all")


def _filtered(query: Select, status: str) -> Select:
    return query if status == "all" else query.where(Sample.status == status)


def _fmt(value) -> str:
    return "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def create_job(db: Session, sample_status: str) -> ExportJob:
    if sample_status not in STATUS_CHOICES:
        raise ValueError(f"status must be one of {', '.join(STATUS_CHOICES)}")
    job = ExportJob(status="queued", sample_status=sample_status, total=0, done=0)
    db.add(job)
    db.commit()
    return job


def export_key(job: ExportJob) -> str:
    return f"{EXPORT_DIR}/{job.file_name}"


def finished_export(store: BlobStore, job: ExportJob | None) -> tuple[str, int] | None:
    """(blob key, size) of a job's finished zip, if it is in the store."""
    if job is None or job.status != "done" or not job.file_name:
        return None
    size = store.size(export_key(job))
    return None if size is None else (export_key(job), size)


def write_export(db: Session, config: Config, job_id: int) -> ExportJob:
    """Write the job's zip to a private local file, then move it into the blob store (whole,
    or not at all); progress on the row."""
    job = db.get(ExportJob, job_id)
    if job is None or job.status in ("done", "expired"):
        return job
    status = job.sample_status
    job.status, job.done, job.error = "running", 0, None
    job.total = db.scalar(_filtered(select(func.count()).select_from(Sample), status)) or 0
    db.commit()
    folder = private_subdir(config, EXPORT_DIR)
    name = f"gazelab-{status}-{utcnow():%Y%m%d-%H%M%S}-{job.id}-{secrets.token_hex(4)}.zip"
    partial = folder / f".{name}.part"     # hidden: never listed as a blob
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            _write_positions(db, archive, status)
            for done in _write_crops(db, archive, status):
                job.done = done
                db.commit()
        size = partial.stat().st_size
        job.file_name = name
        blob_store(config).move_in(export_key(job), partial)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        db.rollback()
        job.status, job.error, job.finished_at = "failed", f"{type(exc).__name__}: {exc}"[:2000], utcnow()
        job.file_name = None
        db.commit()
        raise
    job.status, job.finished_at, job.size_bytes = "done", utcnow(), size
    db.commit()
    return job


def _write_positions(db: Session, archive: zipfile.ZipFile, status: str) -> None:
    rows = _filtered(select(Sample.id, Sample.target_x, Sample.target_y, Sample.roll,
                            CollectionSession.screen_width, CollectionSession.screen_height,
                            Sample.session_id, Sample.volunteer_id, Sample.yaw, Sample.pitch)
                     .join(CollectionSession, CollectionSession.id == Sample.session_id),
                     status).order_by(Sample.id)
    with archive.open("positions.csv", "w", force_zip64=True) as entry:
        text = io.TextIOWrapper(entry, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        for batch in db.execute(rows.execution_options(yield_per=BATCH)).partitions():
            writer.writerows([_fmt(v) for v in row] for row in batch)
        text.flush()
        text.detach()


def _write_crops(db: Session, archive: zipfile.ZipFile, status: str):
    """Write every sample's crops; yields how many samples are done after each batch."""
    # plain rows, not ORM objects: nothing is kept in an identity map between batches
    images = _filtered(select(SampleImages.sample_id, SampleImages.format,
                              *(getattr(SampleImages, kind) for kind in CROP_KINDS))
                       .join(Sample, Sample.id == SampleImages.sample_id),
                       status).order_by(SampleImages.sample_id)
    done = 0
    stamp = utcnow().timetuple()[:6]
    for batch in db.execute(images.execution_options(yield_per=BATCH)).partitions():
        for sample_id, image_format, *crops in batch:
            for kind, crop in zip(CROP_KINDS, crops):
                info = zipfile.ZipInfo(f"{kind}/{sample_id}.jpg", date_time=stamp)
                archive.writestr(info, crop_as_jpeg(crop, image_format), compress_type=zipfile.ZIP_STORED)
        done += len(batch)
        yield done


def remove_old_exports(db: Session, config: Config) -> int:
    """Delete zips finished more than [server] export_keep_hours ago; their jobs expire."""
    cutoff = utcnow() - dt.timedelta(hours=config.server.export_keep_hours)
    old = db.scalars(select(ExportJob).where(ExportJob.status == "done", ExportJob.finished_at < cutoff)).all()
    store = blob_store(config)
    for job in old:
        if job.file_name:
            store.delete(export_key(job))
        job.status, job.error = "expired", f"removed after {config.server.export_keep_hours:g} h"
    db.commit()
    return len(old)
