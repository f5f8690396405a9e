"""Erasure: a volunteer's data removed everywhere it was copied, for a deletion request
and for the retention purge alike.

Every copy: the rows (samples, crops, raw frames, trials, sessions and whatever refers to
them by foreign key), the shards of this node's training-data store that held their samples
(zeroed at their rows, then deleted; the other samples of those shards are decoded again
on the next load — gazelab.shardfiles), any other file in the snapshots folder, every
export zip in the blob store and every export being written here (they may hold the crops;
running exports are cancelled), the volunteer's and their sessions' ids in
training runs' splits and per-volunteer tables (replaced by a count; the run is marked as
trained on since-deleted data). Other nodes drop their whole snapshots folder when their
worker's heartbeat sees the erasure count in Redis move. SQLite zeroes deleted pages (secure_delete) and the WAL is
checkpointed and truncated afterwards, so no page of the file keeps the faces.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from collection import summary
from gazelab import broker
from gazelab.blobs import blob_store
from gazelab.config import Config
from gazelab.db import checkpoint, retrying_deadlocks
from gazelab.files import EXPORT_DIR, SNAPSHOT_DIR
from gazelab.shardfiles import ERASED, ERASURES_SEEN, LOCK, drop_shards_holding, store_lock, stores
from gazelab.schema import (CollectionSession, ExportJob, ModelArtifact, RawFrame, Sample,
                            SampleImages, TrainingRun, Trial, Volunteer, utcnow)

logger = logging.getLogger(__name__)


def delete_volunteer(db: Session, config: Config, volunteer_id: str) -> dict[str, int]:
    """Erase every row and byte of one volunteer; returns what was removed (all zeros
    when there is no such volunteer). Commits. Holds the shard store's lock from the
    delete to the removal of the shards, so no build copies the rows in between."""
    with store_lock(config.data_dir / SNAPSHOT_DIR):
        return retrying_deadlocks(db, lambda: _delete_volunteer(db, config, volunteer_id))


def _delete_volunteer(db: Session, config: Config, volunteer_id: str) -> dict[str, int]:
    session_ids = db.scalars(select(CollectionSession.id).where(
        CollectionSession.volunteer_id == volunteer_id)).all()
    samples = select(Sample.id).where(Sample.volunteer_id == volunteer_id)
    image_bytes = db.scalar(select(func.coalesce(func.sum(
        func.length(SampleImages.face) + func.length(SampleImages.face_aligned)
        + func.length(SampleImages.l_eye) + func.length(SampleImages.r_eye)
        + func.length(SampleImages.head_pos)
        + func.coalesce(func.length(SampleImages.landmarks), 0)), 0)).where(SampleImages.sample_id.in_(samples))) or 0
    summary.forget_volunteer(db, volunteer_id)   # the bulk delete below bypasses the ORM hook
    sample_ids = db.scalars(select(Sample.id).where(Sample.volunteer_id == volunteer_id)).all()
    raw_bytes = db.scalar(select(func.coalesce(func.sum(func.length(RawFrame.jpeg)), 0)).where(
        RawFrame.sample_id.in_(samples))) or 0
    removed = {
        "raw_frames": db.execute(delete(RawFrame).where(RawFrame.sample_id.in_(samples))).rowcount,
        "images": db.execute(delete(SampleImages).where(SampleImages.sample_id.in_(samples))).rowcount,
        "samples": db.execute(delete(Sample).where(Sample.volunteer_id == volunteer_id)).rowcount,
        "trials": db.execute(delete(Trial).where(Trial.session_id.in_(session_ids))).rowcount,
        "sessions": db.execute(delete(CollectionSession).where(
            CollectionSession.volunteer_id == volunteer_id)).rowcount,
        "volunteers": db.execute(delete(Volunteer).where(Volunteer.id == volunteer_id)).rowcount,
    }
    removed["runs_scrubbed"] = _scrub_runs(db, {volunteer_id, *session_ids}) if removed["volunteers"] else 0
    db.commit()
    removed["files"] = _remove_copies(db, config, sample_ids) if removed["samples"] else 0
    db.commit()
    checkpoint(config.database_url)
    if removed["samples"]:
        _tell_other_nodes(config)
    removed["bytes"] = int(image_bytes) + int(raw_bytes)
    return removed


def _scrub_runs(db: Session, ids: set[str]) -> int:
    """Replace these ids in every run's split and metrics (and its model's copy of the
    metrics) by a count; mark such runs."""
    count = 0
    for run in db.scalars(select(TrainingRun)):
        split, erased_split = _without(run.split or {}, ids)
        metrics, erased_metrics = _without(run.metrics or {}, ids)
        if erased_split or erased_metrics:
            split["erased_ids"] = int((run.split or {}).get("erased_ids", 0)) + erased_split
            run.split, run.metrics, run.data_deleted_at = split, metrics, utcnow()
            count += 1
    # the weights column is not loaded: only the metrics are rewritten
    for artifact_id, artifact_metrics in db.execute(select(ModelArtifact.id, ModelArtifact.metrics)).all():
        cleaned, erased = _without(artifact_metrics or {}, ids)
        if erased:
            db.execute(update(ModelArtifact).where(ModelArtifact.id == artifact_id).values(metrics=cleaned))
    return count


def _without(value: Any, ids: set[str]) -> tuple[Any, int]:
    """`value` (JSON) with every string in `ids`, and every object naming one, removed."""
    if isinstance(value, dict):
        kept, erased = {}, 0
        for key, item in value.items():
            if key in ids:
                erased += 1
                continue
            kept[key], n = _without(item, ids)
            erased += n
        return kept, erased
    if isinstance(value, list):
        kept, erased = [], 0
        for item in value:
            if (isinstance(item, str) and item in ids) or (
                    isinstance(item, dict) and any(isinstance(v, str) and v in ids for v in item.values())):
                erased += 1
                continue
            item, n = _without(item, ids)
            kept.append(item)
            erased += n
        return kept, erased
    return value, 0


def _remove_copies(db: Session, config: Config, sample_ids: list[int]) -> int:
    """Delete the shards that held these samples, every other snapshot file, every export zip
    and every export being written here (rebuilt on demand); finished exports expire, running
    ones are cancelled. Returns shards + files."""
    snapshots = config.data_dir / SNAPSHOT_DIR
    removed = drop_shards_holding(snapshots, sample_ids)
    keep = {LOCK, ERASED, ERASURES_SEEN, *(store.name for store in stores(snapshots))}
    for folder in (snapshots, config.data_dir / EXPORT_DIR):
        for path in folder.glob("*") if folder.is_dir() else ():
            if path.name not in keep and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    store = blob_store(config)
    for key in store.keys(EXPORT_DIR):
        store.delete(key)
        removed += 1
    for job in db.scalars(select(ExportJob).where(ExportJob.status == "done")):
        job.status, job.error = "expired", "removed: a volunteer in it asked for their data to be deleted"
    for job in db.scalars(select(ExportJob).where(ExportJob.status.in_(("queued", "running")))):
        # its writer sees this and removes what it wrote (collection.export.write_export)
        job.status, job.error = "failed", "cancelled: a volunteer in it asked for their data to be deleted"
    return removed


def _tell_other_nodes(config: Config) -> None:
    """Bump the erasure count that every worker watches (gazelab.broker.ERASURES_KEY)."""
    try:
        broker.note_erasure(broker.broker_url(config))
    except Exception:   # other nodes then drop theirs at the next erasure they hear of
        logger.exception("erasure done here, but the broker is unreachable: other nodes were "
                         "not told to drop their training snapshots")


def purge_expired(db: Session, config: Config) -> int:
    """Erase volunteers older than [server] retention_days (0 = keep); returns how many."""
    days = config.server.retention_days
    if not days:
        return 0
    cutoff = utcnow() - dt.timedelta(days=days)
    expired = db.scalars(select(Volunteer.id).where(Volunteer.created_at < cutoff)).all()
    for volunteer_id in expired:
        delete_volunteer(db, config, volunteer_id)
    return len(expired)


def abandon_idle_sessions(db: Session, config: Config) -> int:
    """Active sessions idle for [collection] abandon_after_minutes become abandoned."""
    cutoff = utcnow() - dt.timedelta(minutes=config.collection.abandon_after_minutes)
    stale = db.scalars(select(CollectionSession).where(
        CollectionSession.status == "active", CollectionSession.last_activity_at < cutoff)).all()
    for session in stale:
        session.status, session.finished_at = "abandoned", utcnow()
    db.commit()
    return len(stale)
