"""Exports: a zip in the reference project's layout, written by a worker (never inside a web
request) and put in the blob store under exports/ (gazelab.blobs: the data dir, a shared
folder or an S3 bucket, so any web node can serve it), with its progress on an ExportJob row.

positions.csv (id, x, y, head_angle, screen_width, screen_height, session, volunteer, yaw,
pitch) and face/, face_aligned/, l_eye/, r_eye/, head_pos/ of <id>.jpg. Rows and crops
are read in batches (yield_per), so memory does not hold the crops. A zip's central
directory grows with its files (~360 bytes of memory per file while writing), so a large
export is written as several zips of at most [server] export_part_samples samples each
(positions.csv, for all of them, in the first); unzipped into one folder they give the
same layout as one zip.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import secrets
import zipfile

from sqlalchemy import Select, func, select, update
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


def part_names(job: ExportJob) -> list[str]:
    """The file names of a job's zips: its file_name alone, or <stem>-partN.zip for N parts."""
    if not job.file_name:
        return []
    if job.parts <= 1:
        return [job.file_name]
    stem = job.file_name.removesuffix(".zip")
    return [f"{stem}-part{n}.zip" for n in range(1, job.parts + 1)]


def export_key(name: str) -> str:
    return f"{EXPORT_DIR}/{name}"


def finished_export(store: BlobStore, job: ExportJob | None, part: int = 1) -> tuple[str, str, int] | None:
    """(blob key, file name, size) of part `part` (1-based) of a job's finished export."""
    if job is None or job.status != "done":
        return None
    names = part_names(job)
    if not 1 <= part <= len(names):
        return None
    key = export_key(names[part - 1])
    size = store.size(key)
    return None if size is None else (key, names[part - 1], size)


def write_export(db: Session, config: Config, job_id: int) -> ExportJob:
    """Write the job's zips, each to a private local file first, then moved into the blob
    store whole; progress on the row. The samples are those present when it starts."""
    job = db.get(ExportJob, job_id)
    if job is None or job.status in ("done", "expired", "failed"):
        return job
    status = job.sample_status
    last_id = db.scalar(select(func.max(Sample.id))) or 0
    per_part = config.server.export_part_samples
    job.status, job.done, job.error = "running", 0, None
    job.total = db.scalar(_filtered(select(func.count()).select_from(Sample), status)
                          .where(Sample.id <= last_id)) or 0
    job.parts = max(1, math.ceil(job.total / per_part))
    job.file_name = f"gazelab-{status}-{utcnow():%Y%m%d-%H%M%S}-{job.id}-{secrets.token_hex(4)}.zip"
    db.commit()
    folder = private_subdir(config, EXPORT_DIR)
    store = blob_store(config)
    size, partial = 0, None
    batches = _crop_batches(db, status, last_id)
    try:
        carried: list = []
        names = part_names(job)
        for number, name in enumerate(names, 1):
            partial = folder / f".{name}.part"     # hidden: never listed as a blob
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                if number == 1:
                    _write_positions(db, archive, status, last_id)
                room = per_part if number < len(names) else None   # the last part takes any rest
                while room is None or room > 0:
                    if not carried:
                        carried = next(batches, None)
                        if carried is None:
                            break
                    take, carried = (carried, []) if room is None else (carried[:room], carried[room:])
                    _write_crops(archive, take)
                    room = None if room is None else room - len(take)
                    job.done += len(take)
                    db.commit()
            size += partial.stat().st_size
            store.move_in(export_key(name), partial)
    except BaseException as exc:
        batches.close()    # its open cursor would keep SQLite's old snapshot
        if partial is not None:
            partial.unlink(missing_ok=True)
        db.rollback()
        db.refresh(job)    # (a rollback right after a commit expires nothing)
        for name in part_names(job):
            store.delete(export_key(name))
        if job.status == "failed":     # cancelled by an erasure, which also removed our file
            return job
        job.status, job.error, job.finished_at = "failed", f"{type(exc).__name__}: {exc}"[:2000], utcnow()
        job.file_name, job.parts = None, 1
        db.commit()
        raise
    # one conditional UPDATE: an erasure that cancelled this job meanwhile wins
    finished = db.execute(update(ExportJob).where(ExportJob.id == job.id, ExportJob.status == "running")
                          .values(status="done", finished_at=utcnow(), size_bytes=size)).rowcount
    db.commit()
    if not finished:
        for name in part_names(job):
            store.delete(export_key(name))
    db.refresh(job)
    return job


def _write_positions(db: Session, archive: zipfile.ZipFile, status: str, last_id: int) -> None:
    rows = _filtered(select(Sample.id, Sample.target_x, Sample.target_y, Sample.roll,
                            CollectionSession.screen_width, CollectionSession.screen_height,
                            Sample.session_id, Sample.volunteer_id, Sample.yaw, Sample.pitch)
                     .join(CollectionSession, CollectionSession.id == Sample.session_id)
                     .where(Sample.id <= last_id),
                     status).order_by(Sample.id)
    with archive.open("positions.csv", "w", force_zip64=True) as entry:
        text = io.TextIOWrapper(entry, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        for batch in db.execute(rows.execution_options(yield_per=BATCH)).partitions():
            writer.writerows([_fmt(v) for v in row] for row in batch)
        text.flush()
        text.detach()


def _crop_batches(db: Session, status: str, last_id: int):
    """Every exported sample's crops as plain rows (nothing kept in an identity map), in
    batches of BATCH."""
    images = _filtered(select(SampleImages.sample_id, SampleImages.format,
                              *(getattr(SampleImages, kind) for kind in CROP_KINDS))
                       .join(Sample, Sample.id == SampleImages.sample_id)
                       .where(SampleImages.sample_id <= last_id),
                       status).order_by(SampleImages.sample_id)
    result = db.execute(images.execution_options(yield_per=BATCH))
    try:
        for batch in result.partitions():
            yield list(batch)
    finally:
        result.close()


def _write_crops(archive: zipfile.ZipFile, rows) -> None:
    stamp = utcnow().timetuple()[:6]
    for sample_id, image_format, *crops in rows:
        for kind, crop in zip(CROP_KINDS, crops):
            info = zipfile.ZipInfo(f"{kind}/{sample_id}.jpg", date_time=stamp)
            archive.writestr(info, crop_as_jpeg(crop, image_format), compress_type=zipfile.ZIP_STORED)


def remove_old_exports(db: Session, config: Config) -> int:
    """Delete zips finished more than [server] export_keep_hours ago; their jobs expire."""
    cutoff = utcnow() - dt.timedelta(hours=config.server.export_keep_hours)
    old = db.scalars(select(ExportJob).where(ExportJob.status == "done", ExportJob.finished_at < cutoff)).all()
    store = blob_store(config)
    for job in old:
        for name in part_names(job):
            store.delete(export_key(name))
        job.status, job.error = "expired", f"removed after {config.server.export_keep_hours:g} h"
    db.commit()
    return len(old)
