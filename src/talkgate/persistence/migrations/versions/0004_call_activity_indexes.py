"""indexes for the idle reaper and the hourly rate of call starts

``ix_call_logs_status_updated_at`` lets every process's idle reaper find the active calls nothing
touched for ``TALKGATE_CALL_IDLE_TIMEOUT`` without reading the whole table every round;
``ix_call_logs_user_started_at`` lets a start count the user's calls of the last hour
(``TALKGATE_MAX_CALLS_PER_USER_PER_HOUR``) without reading every call the user ever made. No data
changes.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.create_index("ix_call_logs_status_updated_at", ["status", "updated_at"], unique=False)
        batch_op.create_index("ix_call_logs_user_started_at", ["user_id", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_call_logs_user_started_at")
        batch_op.drop_index("ix_call_logs_status_updated_at")
