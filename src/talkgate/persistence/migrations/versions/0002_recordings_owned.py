"""recordings never replaced or lost; provider conversation ids owned

Adds ``call_logs.media_state`` (a media-stream URL records once), an index on
``call_logs.provider_conversation_id`` (the only join to provider-side resources) and
``webhook_deliveries`` (a replayed webhook changes nothing).

Rows of push-to-talk relay calls (an ElevenLabs call with a session) were created under the
provider's own conversation id: that id is copied into ``provider_conversation_id``, so their
webhooks still find them. Calls registered through ``/api/elevenlabs-signed-url`` were created
under an id the client chose, which is not evidence of the provider's id: they keep none.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_state", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_call_logs_provider_conversation_id"), ["provider_conversation_id"], unique=False
        )
    op.execute(
        "UPDATE call_logs SET provider_conversation_id = conversation_id "
        "WHERE provider = 'elevenlabs' AND session_id IS NOT NULL AND provider_conversation_id IS NULL"
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("provider_conversation_id", sa.String(length=128), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_received_at"))
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_logs_provider_conversation_id"))
        batch_op.drop_column("media_state")
