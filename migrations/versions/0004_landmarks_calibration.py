"""landmarks per sample, personal calibrations per session and model

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 23:50:00

Samples stored before this revision keep landmarks NULL (the eyetrax-style peer skips them).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sample_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('landmarks', sa.LargeBinary(), nullable=True))

    op.create_table(
        'session_calibrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.String(length=32), nullable=False),
        sa.Column('artifact_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('mapping', sa.JSON(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['artifact_id'], ['model_artifacts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['session_id'], ['collection_sessions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id', 'artifact_id', name='uq_session_calibrations_session_artifact'),
        sqlite_autoincrement=True,   # ids never reused (see 0003)
    )
    with op.batch_alter_table('session_calibrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_calibrations_artifact_id'), ['artifact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_session_calibrations_session_id'), ['session_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('session_calibrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_calibrations_session_id'))
        batch_op.drop_index(batch_op.f('ix_session_calibrations_artifact_id'))
    op.drop_table('session_calibrations')
    with op.batch_alter_table('sample_images', schema=None) as batch_op:
        batch_op.drop_column('landmarks')
