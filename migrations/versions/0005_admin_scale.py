"""admin summary tables: samples per day and status, per reason code, per fine screen cell

Revision ID: 0005_admin_scale
Revises: 0004
Create Date: 2026-11-22 02:40:00

The tables are filled here from the samples already stored (the same computation as
collection.summary.recount, written out so that this revision does not change when the
code does); from then on every write keeps them current. (The previous revision's id is
'0004', the name its file begins with.)
"""
from collections import Counter
import datetime as dt

from alembic import op
import sqlalchemy as sa


revision = '0005_admin_scale'
down_revision = '0004'
branch_labels = None
depends_on = None

CELL_COLS, CELL_ROWS = 240, 180   # collection.summary's fine grid when this revision was written


def upgrade() -> None:
    days = op.create_table(
        'sample_day_counts',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'status'),
    )
    reasons = op.create_table(
        'sample_reason_counts',
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=256), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('status', 'reason'),
    )
    cells = op.create_table(
        'sample_cell_counts',
        sa.Column('row', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('col', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('row', 'col'),
    )
    _fill(op.get_bind(), days, reasons, cells)


def _fill(bind, days, reasons, cells) -> None:
    sqlite = bind.dialect.name == 'sqlite'
    samples = sa.table('samples', sa.column('status'), sa.column('reasons'), sa.column('captured_at'),
                       sa.column('target_x'), sa.column('target_y'), sa.column('session_id'))
    sessions = sa.table('collection_sessions', sa.column('id'), sa.column('screen_width'),
                        sa.column('screen_height'))
    day = sa.func.date(samples.c.captured_at)
    day_rows = [{'day': d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]), 'status': s, 'n': n}
                for d, s, n in bind.execute(sa.select(day, samples.c.status, sa.func.count())
                                            .group_by(day, samples.c.status))]
    by_reason: Counter = Counter()
    for status, text, n in bind.execute(sa.select(samples.c.status, samples.c.reasons, sa.func.count())
                                        .where(samples.c.reasons != '')
                                        .group_by(samples.c.status, samples.c.reasons)):
        for code in {c for c in (text or '').split(',') if c}:
            by_reason[(status, code)] += n

    def floor(expr):
        return sa.cast(expr, sa.Integer) if sqlite else sa.cast(sa.func.floor(expr), sa.Integer)
    row = floor(samples.c.target_y / sessions.c.screen_height * CELL_ROWS)
    col = floor(samples.c.target_x / sessions.c.screen_width * CELL_COLS)
    by_cell: Counter = Counter()
    for r, c, n in bind.execute(sa.select(row, col, sa.func.count())
                                .select_from(samples.join(sessions, sessions.c.id == samples.c.session_id))
                                .where(samples.c.status == 'accepted').group_by(row, col)):
        by_cell[(min(max(int(r), 0), CELL_ROWS - 1), min(max(int(c), 0), CELL_COLS - 1))] += n
    if day_rows:
        op.bulk_insert(days, day_rows)
    if by_reason:
        op.bulk_insert(reasons, [{'status': s, 'reason': c, 'n': n} for (s, c), n in sorted(by_reason.items())])
    if by_cell:
        op.bulk_insert(cells, [{'row': r, 'col': c, 'n': n} for (r, c), n in sorted(by_cell.items())])


def downgrade() -> None:
    op.drop_table('sample_cell_counts')
    op.drop_table('sample_reason_counts')
    op.drop_table('sample_day_counts')
