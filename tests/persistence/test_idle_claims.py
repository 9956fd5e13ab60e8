"""The idle reaper's queries on SQLite and PostgreSQL: which calls count as idle, and that of
reapers racing for one call exactly one claims it."""

import asyncio
from datetime import timedelta

from talkgate.persistence.models import cuid, utcnow
from talkgate.persistence.repository import Repository


def uid() -> str:
    return f"user_{cuid()}"


async def test_idle_calls_leave_out_relayed_calls_and_live_media_and_one_reaper_claims_each(repo: Repository):
    user = uid()
    direct = await repo.create_call(user, f"direct_{cuid()}")
    _, relayed_call = await repo.open_conversation(user, f"conv_{cuid()}", metadata=None)
    media = await repo.create_call(user, f"media_{cuid()}")
    assert await repo.issue_media(user, media.conversation_id, "pconv_1")
    assert await repo.claim_media(media.conversation_id)  # a media socket holds it
    later = utcnow() + timedelta(seconds=60)
    idle = {c.conversation_id for c in await repo.idle_calls(later, limit=50)}
    assert direct.conversation_id in idle
    assert relayed_call.conversation_id not in idle and media.conversation_id not in idle
    earlier = utcnow() - timedelta(seconds=60)
    assert all(c.user_id != user for c in await repo.idle_calls(earlier, limit=50))  # none idle yet
    claims = await asyncio.gather(
        *(repo.claim_idle_call(direct.conversation_id, later, later) for _ in range(4))
    )
    assert sorted(claims) == [False, False, False, True]
    # Claimed: touched as of the claim, so no other reaper sees it idle at that cutoff.
    assert direct.conversation_id not in {c.conversation_id for c in await repo.idle_calls(later, limit=50)}
    await repo.finish_call(direct.conversation_id, end_reason="abandoned", active_only=True)
    assert not await repo.claim_idle_call(direct.conversation_id, later + timedelta(hours=1), later)
