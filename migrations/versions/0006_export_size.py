"""Large exports: export_jobs.size_bytes becomes a 64-bit integer (a zip may pass 2 GiB),
and export_jobs.parts counts the zips of a job written in parts.

Revision ID: 0006_export_size
Revises: 0005_admin_scale
"""
from alembic import op
import sqlalchemy as sa

revision = '0006_export_size'
down_revision = '0005_admin_scale'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.alter_column("size_bytes", type_=sa.BigInteger(), existing_type=sa.Integer(),
                           existing_nullable=True)
        batch.add_column(sa.Column("parts", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("parts")
        batch.alter_column("size_bytes", type_=sa.Integer(), existing_type=sa.BigInteger(),
                           existing_nullable=True)
