"""What ``talkgate doctor`` found, as data, and its one rendering: a table of checks (✓/✗ and the
reason), then the environment lines to set. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

MAX_REASON = 300  # characters of one reason: a provider's own words are quoted, never at length


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but a deployment should change it; does not fail the run
    FAIL = "fail"  # talkgate will not work as configured: the run exits non-zero
    SKIP = "skip"  # not checked (not configured, or an earlier check failed)


MARK = {Status.OK: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-"}


@dataclass(frozen=True, slots=True)
class Check:
    section: str  # configuration, ElevenLabs, LiveAvatar
    name: str  # what was checked, often the setting it is about
    status: Status
    reason: str


@dataclass(slots=True)
class Report:
    checks: list[Check] = field(default_factory=list)
    env_lines: list[str] = field(default_factory=list)

    def add(self, section: str, name: str, status: Status, reason: str) -> None:
        self.checks.append(Check(section, name, status, reason))

    @property
    def failures(self) -> int:
        return sum(1 for c in self.checks if c.status is Status.FAIL)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret in it replaced, for a reason built from a foreign error's words."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"


def render(report: Report, secrets: Iterable[str] = ()) -> str:
    """The table by section, then the environment lines, then a one-line verdict."""
    hidden = [s for s in secrets if s]
    width = max((len(c.name) for c in report.checks), default=0)
    lines: list[str] = []
    section = None
    for check in report.checks:
        if check.section != section:
            section = check.section
            lines += ["", section] if lines else [section]
        reason = redact(_one_line(check.reason), hidden)
        lines.append(f"  {MARK[check.status]} {check.name.ljust(width)}  {reason}")
    if report.env_lines:
        lines += ["", "Set these environment lines (.env):"]
        lines += [f"  {line}" for line in report.env_lines]
    n = report.failures
    verdict = f"{n} problem{'s' if n != 1 else ''}" if n else "all good"
    lines += ["", f"talkgate doctor: {verdict}"]
    return "\n".join(lines)
