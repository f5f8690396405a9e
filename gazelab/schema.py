"""The database schema shared by the web app and the trainer (SQLAlchemy 2 typed ORM).

Times are naive UTC (``utcnow()``), the same on SQLite and PostgreSQL. Images are stored
as encoded bytes in the database so that any web or worker node can read them.
Integer ids are never reused, not even after a deletion (SQLite AUTOINCREMENT; PostgreSQL
sequences never go back): a deleted volunteer's sample ids cannot come back as another's.
Eyes: ``l_eye`` is the *person's* left eye (on the right side of an unmirrored photo).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any, Optional

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer,
                        LargeBinary, String, Text, UniqueConstraint, select)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

TRIAL_KINDS = ("calibration", "collection", "pursuit", "validation")
SAMPLE_STATUSES = ("accepted", "rejected", "flagged")
RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")
SESSION_STATUSES = ("active", "finished", "abandoned")
EXPORT_STATUSES = ("queued", "running", "done", "failed", "expired")
# The stored crops of a sample: RGB photos, then the grey head-position mask.
CROP_KINDS = ("face", "face_aligned", "l_eye", "r_eye", "head_pos")
PHOTO_KINDS = tuple(kind for kind in CROP_KINDS if kind != "head_pos")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


NEVER_REUSE_IDS = {"sqlite_autoincrement": True}
def stable_id(name: str) -> str:
    """A 32-hex id derived from `name`: virtual volunteers get the same id (hence the same
    train/test split) every time the same seed is run."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Volunteer(Base):
    __tablename__ = "volunteers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    consent_version: Mapped[str] = mapped_column(String(64))
    consented_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # "browser" for real volunteers, "demo:<seed>" for the virtual volunteer.
    source: Mapped[str] = mapped_column(String(64), default="browser", index=True)

    sessions: Mapped[list[CollectionSession]] = relationship(
        back_populates="volunteer", cascade="all, delete-orphan", passive_deletes=True)


class CollectionSession(Base):
    __tablename__ = "collection_sessions"
    __table_args__ = (Index("ix_collection_sessions_status_activity", "status", "last_activity_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    volunteer_id: Mapped[str] = mapped_column(
        ForeignKey("volunteers.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    screen_width: Mapped[int] = mapped_column(Integer)
    screen_height: Mapped[int] = mapped_column(Integer)
    device_pixel_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    mm_per_px: Mapped[Optional[float]] = mapped_column(Float)
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # Last write by the volunteer's page; idle sessions become "abandoned".
    last_activity_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="active")

    volunteer: Mapped[Volunteer] = relationship(back_populates="sessions")
    trials: Mapped[list[Trial]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True)
    samples: Mapped[list[Sample]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("session_id", "client_trial_id", name="uq_trials_session_client_trial"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The page's own id for the trial: a retried POST returns the first trial.
    client_trial_id: Mapped[Optional[str]] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(
        ForeignKey("collection_sessions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target_x: Mapped[float] = mapped_column(Float)
    target_y: Mapped[float] = mapped_column(Float)
    shown_at: Mapped[dt.datetime] = mapped_column(DateTime)
    attention_letter: Mapped[Optional[str]] = mapped_column(String(1))
    attention_answer: Mapped[Optional[str]] = mapped_column(String(8))
    # None: no check made; True/False: the volunteer's answer was right/wrong or missing.
    attention_passed: Mapped[Optional[bool]] = mapped_column(Boolean)

    session: Mapped[CollectionSession] = relationship(back_populates="trials")


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("session_id", "client_frame_id", name="uq_samples_session_frame"),
        Index("ix_samples_status_session", "status", "session_id"),
        Index("ix_samples_volunteer_status", "volunteer_id", "status"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("collection_sessions.id", ondelete="CASCADE"))
    volunteer_id: Mapped[str] = mapped_column(ForeignKey("volunteers.id", ondelete="CASCADE"))
    trial_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    client_frame_id: Mapped[str] = mapped_column(String(64))
    # active_history on the columns the admin summary counts by (collection.summary):
    # a change knows the old value it replaces.
    captured_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True, active_history=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Target on the volunteer's screen at capture time, CSS px (origin top-left).
    target_x: Mapped[float] = mapped_column(Float, active_history=True)
    target_y: Mapped[float] = mapped_column(Float, active_history=True)
    # Head pose in degrees (signs: collection.extraction documents them); None when no face.
    yaw: Mapped[Optional[float]] = mapped_column(Float)
    pitch: Mapped[Optional[float]] = mapped_column(Float)
    roll: Mapped[Optional[float]] = mapped_column(Float)
    # Face box in frame px.
    face_x: Mapped[Optional[float]] = mapped_column(Float)
    face_y: Mapped[Optional[float]] = mapped_column(Float)
    face_w: Mapped[Optional[float]] = mapped_column(Float)
    face_h: Mapped[Optional[float]] = mapped_column(Float)
    frame_width: Mapped[Optional[int]] = mapped_column(Integer)
    frame_height: Mapped[Optional[int]] = mapped_column(Integer)
    # Quality measures (eye aspect ratios, iris centres, sharpness, brightness, face size).
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), active_history=True)
    # Comma-separated reason codes (extraction verdicts, attention_failed, review notes).
    reasons: Mapped[str] = mapped_column(String(256), default="", active_history=True)
    reviewed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # Error (px) of the active model on this sample, for outlier flagging.
    model_error_px: Mapped[Optional[float]] = mapped_column(Float)

    session: Mapped[CollectionSession] = relationship(back_populates="samples")
    images: Mapped[Optional[SampleImages]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, uselist=False)


class SampleImages(Base):
    """The five crops of one sample, each encoded (JPEG or PNG) bytes, and its landmarks."""
    __tablename__ = "sample_images"

    sample_id: Mapped[int] = mapped_column(
        ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    format: Mapped[str] = mapped_column(String(8))
    face: Mapped[bytes] = mapped_column(LargeBinary)
    face_aligned: Mapped[bytes] = mapped_column(LargeBinary)
    l_eye: Mapped[bytes] = mapped_column(LargeBinary)
    r_eye: Mapped[bytes] = mapped_column(LargeBinary)
    head_pos: Mapped[bytes] = mapped_column(LargeBinary)
    # The 478 face-mesh landmarks, int16 (x, y) in frame px x 8 (collection.codec.encode_landmarks);
    # None for samples stored before migration 0004.
    landmarks: Mapped[Optional[bytes]] = mapped_column(LargeBinary)


class SampleDayCount(Base):
    """Admin summary (collection.summary keeps it current): samples per capture day and status."""
    __tablename__ = "sample_day_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class SampleReasonCount(Base):
    """Admin summary: samples per status carrying each reason code (a sample with two codes
    counts under both)."""
    __tablename__ = "sample_reason_counts"

    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(256), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class SampleCellCount(Base):
    """Admin summary: accepted samples per cell of a fine normalised screen grid
    (collection.summary.CELL_COLS x CELL_ROWS); coarser coverage maps are sums of these."""
    __tablename__ = "sample_cell_counts"

    row: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    col: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer, default=0)


class RawFrame(Base):
    """The uploaded webcam frame, kept only when [server] store_raw_frames is on."""
    __tablename__ = "raw_frames"

    sample_id: Mapped[int] = mapped_column(
        ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    heartbeat_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # epoch, epochs, train_loss, val_error_px, eta_s, history: [{epoch, train_loss, val_error_px}]
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    split: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset_version: Mapped[Optional[str]] = mapped_column(String(64))
    error: Mapped[Optional[str]] = mapped_column(Text)
    celery_task_id: Mapped[Optional[str]] = mapped_column(String(64))
    worker: Mapped[Optional[str]] = mapped_column(String(256))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a volunteer whose samples this run trained on was erased afterwards.
    data_deleted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    figures: Mapped[list[RunFigure]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True)


class RunFigure(Base):
    """A rendered PNG of a run: error_heatmap, coverage_heatmap, error_histogram, loss_curves."""
    __tablename__ = "run_figures"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_run_figures_run_name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    png: Mapped[bytes] = mapped_column(LargeBinary)


class ModelArtifact(Base):
    __tablename__ = "model_artifacts"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # torch.save of the state dict.
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    # architecture name, inputs, image_size, layer sizes: enough to rebuild the model.
    architecture: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    normalisation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Per-region mean error (px) and counts on the test split, for the sampler and live dot.
    error_grid: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    promoted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    @classmethod
    def active_id(cls, db) -> int | None:
        """The id of the promoted model, None before any promotion (the one lookup)."""
        return db.scalar(select(cls.id).where(cls.is_active.is_(True)).order_by(cls.id.desc()).limit(1))

    @classmethod
    def active(cls, db) -> ModelArtifact | None:
        artifact_id = cls.active_id(db)
        return None if artifact_id is None else db.get(cls, artifact_id)


class SessionCalibration(Base):
    """A session's personal calibration for one model artifact (trainer.calibration):
    fitted on the session's calibration trials, applied on top of that model's output."""
    __tablename__ = "session_calibrations"
    __table_args__ = (
        UniqueConstraint("session_id", "artifact_id", name="uq_session_calibrations_session_artifact"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("collection_sessions.id", ondelete="CASCADE"), index=True)
    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("model_artifacts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # The fitted mapping (trainer.calibration.Calibration.as_dict) and its fit report.
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AdminUser(Base):
    __tablename__ = "admin_users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # In every login cookie; logout and password changes bump it, revoking all cookies.
    session_version: Mapped[int] = mapped_column(Integer, default=0)


class ExportJob(Base):
    """A zip export written by a worker into the blob store, then downloaded: one zip, or
    `parts` zips of at most [server] export_part_samples samples each (positions.csv in the
    first), so the writer's memory does not grow with the dataset."""
    __tablename__ = "export_jobs"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="queued")   # EXPORT_STATUSES
    sample_status: Mapped[str] = mapped_column(String(16))              # accepted | ... | all
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    file_name: Mapped[Optional[str]] = mapped_column(String(128))
    size_bytes: Mapped[Optional[int]] = mapped_column(BigInteger)
    parts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    error: Mapped[Optional[str]] = mapped_column(Text)
