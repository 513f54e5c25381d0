"""A verdict per area (OK / WARN / FAIL), the command that mends it, and the overall exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum
from typing import Any

from kapman import clock


class Verdict(IntEnum):
    """Ordered so the overall verdict is the worst one; the value is the exit code."""

    OK = 0
    WARN = 1
    FAIL = 2


@dataclass
class Check:
    area: str
    verdict: Verdict
    summary: str
    fix: str | None = None                 # the command (or action) that mends a WARN or FAIL
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"area": self.area, "verdict": self.verdict.name, "summary": self.summary, "fix": self.fix,
                "details": self.details}


@dataclass
class StatusReport:
    now: datetime
    checks: list[Check]

    @property
    def verdict(self) -> Verdict:
        return max((c.verdict for c in self.checks), default=Verdict.OK)

    @property
    def exit_code(self) -> int:
        return int(self.verdict)

    def check(self, area: str) -> Check:
        return next(c for c in self.checks if c.area == area)

    def render(self) -> str:
        ny = self.now.astimezone(clock.NEW_YORK)
        lines = [f"status as of {ny:%Y-%m-%d %H:%M} New York (KapMan's clock)"]
        for c in self.checks:
            lines.append(f"{c.verdict.name:<5} {c.area:<9} {c.summary}")
            if c.fix and c.verdict is not Verdict.OK:
                lines.append(f"{'':<16}fix: {c.fix}")
        lines.append(f"overall {self.verdict.name} (exit {self.exit_code})")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now, "verdict": self.verdict.name, "exit_code": self.exit_code,
                "checks": [c.as_dict() for c in self.checks]}


def day_list(days: list[date], limit: int = 5) -> str:
    """'2025-12-03, 2025-12-04 and 3 more'."""
    shown = ", ".join(d.isoformat() for d in days[:limit])
    return shown + (f" and {len(days) - limit} more" if len(days) > limit else "")


def span(days: list[date]) -> str:
    return f"{days[0]}..{days[-1]}" if days else "-"
