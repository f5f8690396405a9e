"""The admin summary: small tables of counts kept current by every write, so that the
overview and the coverage map never scan the samples table.

- sample_day_counts (day, status) → n: counts by status and samples per day;
- sample_reason_counts (status, reason code) → n: the reasons parsed from the
  comma-separated `reasons` text (a plain GROUP BY cannot split it);
- sample_cell_counts (row, col) → n: accepted samples per cell of a fine normalised screen
  grid (CELL_COLS x CELL_ROWS); a coverage map of `cols` x `rows` cells is a sum over
  it — exact when `cols` divides CELL_COLS and `rows` divides CELL_ROWS.

How it stays current: every flush of a SQLAlchemy session that inserts, changes or deletes
Sample rows through the ORM (attention checks, review, outlier flagging, tests) adds its
deltas to these tables in the same transaction (the after_flush hook below, registered when
`collection` is imported). Statements that bypass the ORM say so themselves: ingest inserts
each frame's sample as a Core statement and calls `count_new` in its transaction; the
erasure calls `forget_volunteer` before its bulk delete; a bulk loader (the scale benchmark)
calls `recount`, as does `gazelab db recount` after anything else that wrote samples behind
the ORM's back. Upserts go in a fixed order (table, then key), so
concurrent writers on PostgreSQL wait for each other rather than deadlock within a flush.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Integer, cast, delete, event, func, inspect, select
from sqlalchemy.orm import Session

from collection import reasons as reason_codes
from gazelab.schema import (SAMPLE_STATUSES, CollectionSession, Sample, SampleCellCount,
                            SampleDayCount, SampleReasonCount)

CELL_COLS, CELL_ROWS = 240, 180   # divisible by 1-6, 8, 10, 12, 15, 16, 20 ... / 1-6, 9, 10, 12, 15, 18, 20 ...
COUNTED = ("status", "reasons", "captured_at", "target_x", "target_y", "session_id")


@dataclass
class Deltas:
    days: Counter = field(default_factory=Counter)      # (date, status) → ±n
    reasons: Counter = field(default_factory=Counter)   # (status, code) → ±n
    cells: Counter = field(default_factory=Counter)     # (row, col) → ±n

    def add(self, state: dict[str, Any], screen: tuple[int, int] | None, sign: int) -> None:
        status = state["status"]
        self.days[(_day(state["captured_at"]), status)] += sign
        for code in set(reason_codes.parse(state["reasons"])):
            self.reasons[(status, code)] += sign
        if status == "accepted" and screen is not None:
            self.cells[cell(state["target_x"], state["target_y"], *screen)] += sign

    def __bool__(self) -> bool:
        return any(v for counter in (self.days, self.reasons, self.cells) for v in counter.values())


def cell(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """(row, col) of a target in the fine grid: floor(fraction x n), clamped (as in SQL)."""
    return (min(max(math.floor(y / height * CELL_ROWS), 0), CELL_ROWS - 1),
            min(max(math.floor(x / width * CELL_COLS), 0), CELL_COLS - 1))


def _day(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# --- keeping it current ----------------------------------------------------------------

def _state(sample: Sample, old: bool) -> dict[str, Any]:
    """The counted columns of `sample`: as last flushed (old) or as now."""
    attrs = inspect(sample).attrs
    state = {}
    for name in COUNTED:
        history = attrs[name].history
        if old and history.deleted:
            state[name] = history.deleted[0]
        else:
            state[name] = getattr(sample, name)
    return state


def _changed(sample: Sample) -> bool:
    attrs = inspect(sample).attrs
    return any(attrs[name].history.has_changes() for name in COUNTED)


def _screens(db: Session, session_ids: set[str]) -> dict[str, tuple[int, int]]:
    screens = {}
    missing = []
    for session_id in session_ids:
        known = db.identity_map.get(db.identity_key(CollectionSession, session_id))
        if known is not None and known.screen_width:
            screens[session_id] = (known.screen_width, known.screen_height)
        else:
            missing.append(session_id)
    if missing:
        for session_id, width, height in db.connection().execute(select(
                CollectionSession.id, CollectionSession.screen_width, CollectionSession.screen_height)
                .where(CollectionSession.id.in_(missing))):
            screens[session_id] = (width, height)
    return screens


def _after_flush(db: Session, _context) -> None:
    plus = [obj for obj in db.new if isinstance(obj, Sample)]
    changed = [obj for obj in db.dirty if isinstance(obj, Sample) and _changed(obj)]
    minus = [obj for obj in db.deleted if isinstance(obj, Sample)]
    if not (plus or changed or minus):
        return
    states = ([(_state(s, old=False), 1) for s in plus]
              + [(_state(s, old=True), -1) for s in changed + minus]
              + [(_state(s, old=False), 1) for s in changed])
    screens = _screens(db, {state["session_id"] for state, _ in states if state["status"] == "accepted"})
    deltas = Deltas()
    for state, sign in states:
        deltas.add(state, screens.get(state["session_id"]), sign)
    apply(db, deltas)


event.listen(Session, "after_flush", _after_flush)


def _upsert(db: Session, table, keys: tuple[str, ...], counter: Counter) -> None:
    rows = [dict(zip(keys, key), n=n) for key, n in sorted(counter.items()) if n]
    if rows:
        statement = _upsert_statement(db.get_bind().dialect.name, table, keys)
        db.connection().execute(statement, rows if len(rows) > 1 else rows[0])


@lru_cache(maxsize=None)
def _upsert_statement(dialect: str, table, keys: tuple[str, ...]):
    """INSERT … ON CONFLICT (keys) DO UPDATE SET n = n + excluded.n, built once per table
    (ingest runs it for every frame; building it cost more than running it)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    return statement.on_conflict_do_update(index_elements=list(keys),
                                           set_={"n": table.n + statement.excluded.n})


def apply(db: Session, deltas: Deltas) -> None:
    """Add `deltas` to the summary tables (in the caller's transaction)."""
    _upsert(db, SampleDayCount, ("day", "status"), deltas.days)
    _upsert(db, SampleReasonCount, ("status", "reason"), deltas.reasons)
    _upsert(db, SampleCellCount, ("row", "col"), deltas.cells)


def count_new(db: Session, samples: list[dict[str, Any]], screen: tuple[int, int]) -> None:
    """Count samples inserted without the ORM (each: its COUNTED columns, and more), taken
    on one session's `screen`, in the caller's transaction."""
    deltas = Deltas()
    for sample in samples:
        deltas.add(sample, screen, 1)
    apply(db, deltas)


def forget_volunteer(db: Session, volunteer_id: str) -> None:
    """Take a volunteer's samples out of the summary; call just before bulk-deleting them."""
    deltas = Deltas()
    query = (select(Sample.status, Sample.reasons, Sample.captured_at, Sample.target_x, Sample.target_y,
                    Sample.session_id, CollectionSession.screen_width, CollectionSession.screen_height)
             .join(CollectionSession, CollectionSession.id == Sample.session_id)
             .where(Sample.volunteer_id == volunteer_id))
    for row in db.execute(query):
        state = dict(zip(COUNTED, row[:6]))
        deltas.add(state, (row.screen_width, row.screen_height), -1)
    apply(db, deltas)


# --- from scratch --------------------------------------------------------------------------

def _cell_sql(db: Session, fraction, n: int):
    """floor(fraction * n) in SQL (fractions are >= 0: SQLite's CAST truncates; PostgreSQL's rounds)."""
    scaled = fraction * n
    if db.get_bind().dialect.name == "sqlite":
        return cast(scaled, Integer)
    return cast(func.floor(scaled), Integer)


def from_scratch(db: Session) -> Deltas:
    """The summary computed from the samples themselves (three GROUP BYs over every row)."""
    deltas = Deltas()
    day = func.date(Sample.captured_at)
    for d, status, n in db.execute(select(day, Sample.status, func.count()).group_by(day, Sample.status)):
        deltas.days[(_day(d), status)] += n
    for status, text, n in db.execute(select(Sample.status, Sample.reasons, func.count())
                                      .where(Sample.reasons != "").group_by(Sample.status, Sample.reasons)):
        for code in set(reason_codes.parse(text)):
            deltas.reasons[(status, code)] += n
    row = _cell_sql(db, Sample.target_y / CollectionSession.screen_height, CELL_ROWS)
    col = _cell_sql(db, Sample.target_x / CollectionSession.screen_width, CELL_COLS)
    for r, c, n in db.execute(select(row, col, func.count())
                              .join(CollectionSession, Sample.session_id == CollectionSession.id)
                              .where(Sample.status == "accepted").group_by(row, col)):
        deltas.cells[(min(max(int(r), 0), CELL_ROWS - 1), min(max(int(c), 0), CELL_COLS - 1))] += n
    return deltas


def stored(db: Session) -> Deltas:
    """The summary as stored (zero rows left out)."""
    deltas = Deltas()
    for d, status, n in db.execute(select(SampleDayCount.day, SampleDayCount.status, SampleDayCount.n)):
        if n:
            deltas.days[(_day(d), status)] += n
    for status, code, n in db.execute(select(SampleReasonCount.status, SampleReasonCount.reason,
                                             SampleReasonCount.n)):
        if n:
            deltas.reasons[(status, code)] += n
    for r, c, n in db.execute(select(SampleCellCount.row, SampleCellCount.col, SampleCellCount.n)):
        if n:
            deltas.cells[(r, c)] += n
    return deltas


def recount(db: Session) -> dict[str, int]:
    """Rebuild the summary from scratch (`gazelab db recount`); commits. Returns its sizes."""
    fresh = from_scratch(db)
    for table in (SampleDayCount, SampleReasonCount, SampleCellCount):
        db.execute(delete(table))
    apply(db, fresh)
    db.commit()
    return {"days": len(fresh.days), "reasons": len(fresh.reasons), "cells": len(fresh.cells),
            "samples": sum(fresh.days.values())}


# --- reading it ----------------------------------------------------------------------------

def status_counts(db: Session) -> dict[str, int]:
    """Samples by status (every status present, 0 when none) and in all ("samples")."""
    found = dict(db.execute(select(SampleDayCount.status, func.sum(SampleDayCount.n))
                            .group_by(SampleDayCount.status)).all())
    counts = {status: int(found.get(status) or 0) for status in SAMPLE_STATUSES}
    counts["samples"] = sum(int(n or 0) for n in found.values())
    return counts


def samples_per_day(db: Session) -> list[tuple[str, int]]:
    rows = db.execute(select(SampleDayCount.day, func.sum(SampleDayCount.n)).group_by(SampleDayCount.day)
                      .having(func.sum(SampleDayCount.n) > 0).order_by(SampleDayCount.day)).all()
    return [(str(d), int(n)) for d, n in rows]


def rejection_reasons(db: Session) -> list[tuple[str, int]]:
    """How many non-accepted samples carry each reason code, most frequent first."""
    total = func.sum(SampleReasonCount.n)
    rows = db.execute(select(SampleReasonCount.reason, total).where(SampleReasonCount.status != "accepted")
                      .group_by(SampleReasonCount.reason).having(total > 0)
                      .order_by(total.desc(), SampleReasonCount.reason)).all()
    return [(code, int(n)) for code, n in rows]


def reason_in_use(db: Session, text: str) -> bool:
    """Whether any sample's reasons could contain `text` (a code containing it is counted)."""
    return db.scalar(select(SampleReasonCount.reason).where(SampleReasonCount.reason.contains(text),
                                                            SampleReasonCount.n > 0).limit(1)) is not None


def coverage(db: Session, cols: int, rows: int) -> np.ndarray:
    """Accepted samples per cell of a `rows` x `cols` normalised grid, from the fine grid:
    exact when the sizes divide CELL_COLS / CELL_ROWS, else each fine cell counts where
    its centre falls (off by at most one fine cell at the coarse cells' edges)."""
    grid = np.zeros((rows, cols), dtype=np.int64)
    if CELL_COLS % cols == 0 and CELL_ROWS % rows == 0:
        r, c = SampleCellCount.row // (CELL_ROWS // rows), SampleCellCount.col // (CELL_COLS // cols)
        query = select(r, c, func.sum(SampleCellCount.n)).group_by(r, c)
        for i, j, n in db.execute(query):
            grid[int(i), int(j)] += int(n or 0)
        return grid
    for i, j, n in db.execute(select(SampleCellCount.row, SampleCellCount.col, SampleCellCount.n)
                              .where(SampleCellCount.n != 0)):
        grid[min(int((i + 0.5) * rows / CELL_ROWS), rows - 1), min(int((j + 0.5) * cols / CELL_COLS), cols - 1)] += n
    return grid
