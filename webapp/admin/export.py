"""Export: a zip in the reference project's layout, streamed as it is written.

positions.csv (id, x, y, head_angle, screen_width, screen_height, session, volunteer, yaw,
pitch) and face/, face_aligned/, l_eye/, r_eye/, head_pos/ of <id>.jpg. Rows and images are
read in batches (yield_per) and each batch's zip bytes are sent before the next is read,
so memory stays flat whatever the dataset size.
"""
from __future__ import annotations

import csv
import io
import zipfile
from typing import Iterator

from flask import Response, current_app, render_template, request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from collection.codec import crop_as_jpeg
from gazelab.schema import CROP_KINDS, SAMPLE_STATUSES, CollectionSession, Sample, SampleImages, utcnow
from webapp import get_db
from webapp.admin import bp
from webapp.errors import ApiError

BATCH = 200
CSV_COLUMNS = ("id", "x", "y", "head_angle", "screen_width", "screen_height",
               "session", "volunteer", "yaw", "pitch")


class ChunkSink(io.RawIOBase):
    """A write-only, unseekable file: zipfile writes into it, the generator drains it."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _filtered(query: Select, status: str) -> Select:
    return query if status == "all" else query.where(Sample.status == status)


def _fmt(value) -> str:
    return "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def export_zip(db: Session, status: str) -> Iterator[bytes]:
    """Yield the bytes of the export zip of samples with `status` ("all" for every status)."""
    sink = ChunkSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
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
                yield sink.drain()
            text.detach()
        # plain rows, not ORM objects: nothing is kept in an identity map between batches
        images = _filtered(select(SampleImages.sample_id, SampleImages.format,
                                  *(getattr(SampleImages, kind) for kind in CROP_KINDS))
                           .join(Sample, Sample.id == SampleImages.sample_id),
                           status).order_by(SampleImages.sample_id)
        for batch in db.execute(images.execution_options(yield_per=BATCH)).partitions():
            for sample_id, image_format, *crops in batch:
                for kind, crop in zip(CROP_KINDS, crops):
                    info = zipfile.ZipInfo(f"{kind}/{sample_id}.jpg", date_time=_zip_time())
                    archive.writestr(info, crop_as_jpeg(crop, image_format), compress_type=zipfile.ZIP_STORED)
            yield sink.drain()
    yield sink.drain()


def _zip_time() -> tuple[int, int, int, int, int, int]:
    return utcnow().timetuple()[:6]


def _status_arg() -> str:
    status = request.args.get("status", "accepted")
    if status not in (*SAMPLE_STATUSES, "all"):
        raise ApiError(400, "bad_status", f"status must be one of {', '.join(SAMPLE_STATUSES)}, all")
    return status


@bp.get("/export")
def export_page():
    db = get_db()
    counts = dict(db.execute(select(Sample.status, func.count()).group_by(Sample.status)).all())
    return render_template("admin/export.html", counts=counts, statuses=SAMPLE_STATUSES)


@bp.get("/export.zip")
def export_download():
    status = _status_arg()
    # its own session: the request's one is closed before streaming ends
    sessions = current_app.extensions["db_sessions"]

    def generate() -> Iterator[bytes]:
        db = sessions()
        try:
            yield from (chunk for chunk in export_zip(db, status) if chunk)
        finally:
            db.close()

    name = f"gazelab-{status}-{utcnow():%Y%m%d-%H%M%S}.zip"
    return Response(generate(), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})
