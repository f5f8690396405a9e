"""privacy and reliability: ids never reused, session activity, admin session versions,
runs trained on since-deleted data, export jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Tables with integer ids: on SQLite they are rebuilt with AUTOINCREMENT so that a deleted
# row's id is never handed out again (PostgreSQL sequences never go back anyway).
INTEGER_ID_TABLES = ("trials", "samples", "training_runs", "run_figures", "model_artifacts",
                     "admin_users")


def upgrade() -> None:
    with op.batch_alter_table('collection_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_activity_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE collection_sessions SET last_activity_at = COALESCE(finished_at, started_at)")
    with op.batch_alter_table('collection_sessions', schema=None) as batch_op:
        batch_op.alter_column('last_activity_at', existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index('ix_collection_sessions_status_activity', ['status', 'last_activity_at'])

    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_deleted_at', sa.DateTime(), nullable=True))

    op.create_table(
        'export_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('sample_status', sa.String(length=16), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('file_name', sa.String(length=128), nullable=True),
        sa.Column('size_bytes', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_jobs_created_at'), ['created_at'], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        for table in INTEGER_ID_TABLES:
            with op.batch_alter_table(table, recreate="always",
                                      table_kwargs={"sqlite_autoincrement": True}):
                pass


def downgrade() -> None:
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_jobs_created_at'))
    op.drop_table('export_jobs')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('data_deleted_at')
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
    with op.batch_alter_table('collection_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_collection_sessions_status_activity')
        batch_op.drop_column('last_activity_at')
