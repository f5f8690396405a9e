"""Database engine and sessions (one engine per URL per process)."""
from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")   # deleted rows' bytes (faces) are zeroed
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@lru_cache(maxsize=None)
def _engine(url: str, pid: int) -> Engine:
    # pid in the cache key: a forked worker must not reuse its parent's connections.
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def get_engine(url: str) -> Engine:
    return _engine(url, os.getpid())


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextlib.contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back (writing nothing) on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# PostgreSQL's "deadlock detected" and "could not serialize": the transaction was rolled
# back as a whole and may simply run again.
RETRYABLE_SQLSTATES = ("40P01", "40001")
RETRIES = 3


def is_retryable(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in RETRYABLE_SQLSTATES


def retrying_deadlocks(db: Session, work: Callable[[], T]) -> T:
    """`work()` (one transaction in `db`), run again — up to RETRIES times in all — when
    PostgreSQL rolled it back to break a deadlock."""
    for attempt in range(1, RETRIES + 1):
        try:
            return work()
        except OperationalError as exc:
            db.rollback()
            if not is_retryable(exc) or attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


def checkpoint(url: str) -> None:
    """SQLite: copy the WAL into the database and truncate it, so that pages freed by an
    erasure (zeroed by secure_delete) leave no old copy behind in the WAL. No-op elsewhere."""
    if url.startswith("sqlite"):
        with get_engine(url).connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def ping(url: str) -> None:
    with get_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))
