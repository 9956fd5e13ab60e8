"""what the provider reports after a call: its transcript, analysis and metadata

Adds to ``call_logs`` what ElevenLabs' ``post_call_transcription`` webhook carries:
``transcript_source`` (NULL: talkgate's own lines; ``provider``: the webhook's transcript replaced
them), ``analysis`` (summary, evaluation and data-collection results, call outcome, as JSON),
``provider_duration_s`` and ``provider_cost``. Existing rows keep their transcripts; every new
column starts NULL.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transcript_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("analysis", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("provider_duration_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("provider_cost", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.drop_column("provider_cost")
        batch_op.drop_column("provider_duration_s")
        batch_op.drop_column("analysis")
        batch_op.drop_column("transcript_source")
