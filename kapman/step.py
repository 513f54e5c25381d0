"""The one result every step returns, and the exit-code policy that follows from it.

A step (`run(settings, params, progress) -> StepResult`) counts rows, records the units (files,
symbols, dates) it completed and the ones that failed with a reason, and says when nothing could
be done for what was asked.  The outcome, the summary line, the ``--json`` object, the ledger
status and the exit code are all derived here, so no step decides them on its own.

| outcome        | when                                                         | exit |
|----------------|--------------------------------------------------------------|------|
| ok             | the asked work is done (an expected "already up to date" too) | 0    |
| partial        | some units failed, others were done                          | 1    |
| failed         | every unit attempted failed                                  | 2    |
| nothing-to-do  | nothing could be done for what was asked                     | 2    |
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

#: How many failures or notes a summary lists before it says "and N more": a 10 MB input of
#: duplicates must not become a 10 MB summary line or ledger row.
LISTED_AT_MOST = 20
#: How many failed parts of a run (not its units: an archive, a lost snapshot) the summary line names.
NAMED_PARTS = 3


class Outcome(StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    NOTHING = "nothing-to-do"


EXIT_CODES = {Outcome.OK: 0, Outcome.PARTIAL: 1, Outcome.FAILED: 2, Outcome.NOTHING: 2}

COUNTS = ("read", "written", "unchanged", "rejected", "removed")

#: A step's own typed details (a dataclass, or None): rendered by ``as_dict`` for --json and the ledger.
D = TypeVar("D")


@dataclass(frozen=True)
class Failure:
    unit: str      # the file, symbol or date that failed
    reason: str
    counted: bool = True  # one of the step's units; False for a part of the run (its archive)

    def as_dict(self) -> dict[str, str]:
        return {"unit": self.unit, "reason": self.reason}


@dataclass
class StepResult(Generic[D]):
    step: str
    unit: str = "units"                 # what a unit of work is: "files", "symbols", "dates"
    read: int = 0
    written: int = 0
    unchanged: int = 0
    rejected: int = 0
    removed: int = 0
    done: int = 0                       # units completed
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: D = None  # type: ignore[assignment]  # the step's typed details (a dataclass), or None
    headline: str = ""                  # the step's own words for the summary line
    nothing_reason: str | None = None
    started: float = field(default_factory=time.perf_counter, repr=False)
    seconds: float | None = None

    # -- recording -------------------------------------------------------------------------------

    def fail(self, unit: str, reason: str, *, counted: bool = True) -> None:
        """``unit`` failed; ``counted=False``: not one of the step's units but a part of the run
        (the summary says "archive failed", not "1 symbols failed")."""
        self.failures.append(Failure(str(unit), reason, counted))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def nothing(self, reason: str) -> None:
        """Nothing could be done for what was asked (unknown symbols only, a date without bars)."""
        self.nothing_reason = reason

    def stop_clock(self) -> StepResult:
        if self.seconds is None:
            self.seconds = time.perf_counter() - self.started
        return self

    # -- derived ---------------------------------------------------------------------------------

    @property
    def outcome(self) -> Outcome:
        if self.nothing_reason is not None and not self.failures:
            return Outcome.NOTHING
        if self.failures:
            return Outcome.PARTIAL if self.done else Outcome.FAILED
        return Outcome.OK

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def elapsed(self) -> float:
        return self.seconds if self.seconds is not None else time.perf_counter() - self.started

    def units_done(self) -> int:
        """Units done so far (a lost connection's message says how far a run got): the details'
        own running count when they keep one (``units_done()``), else ``done``."""
        counted = getattr(self.details, "units_done", None)
        return int(counted()) if callable(counted) else self.done

    def details_dict(self) -> dict[str, Any]:
        """The typed details as the ``--json`` object's and the ledger's extra keys."""
        details: Any = self.details
        if details is None:
            return {}
        if hasattr(details, "as_dict"):
            return dict(details.as_dict())
        if not is_dataclass(details) or isinstance(details, type):
            raise TypeError(f"{self.step}: details must be a dataclass, not {type(details).__name__}")
        return asdict(details)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}

    def summary(self) -> str:
        """One line, then one line per failure and note (each list capped)."""
        counts = ", ".join(f"{n} {name}" for name, n in self.counts().items() if n)
        parts = [f"{self.step}: {self.outcome.value}"]
        if self.headline:
            parts.append(self.headline)
        elif self.nothing_reason:
            parts.append(self.nothing_reason)
        if counts:
            parts.append(counts)
        if self.failures:
            parts.append(self.failed_text())
        parts.append(f"{self.elapsed:.1f}s")
        lines = [" · ".join(parts)]
        if self.nothing_reason and self.headline:
            lines.append(f"  {self.nothing_reason}")
        lines += [f"  failed {f.unit}: {f.reason}" for f in self.failures[:LISTED_AT_MOST]]
        lines += _more(self.failures, "failures")
        lines += [f"  note: {n}" for n in self.notes[:LISTED_AT_MOST]]
        lines += _more(self.notes, "notes")
        return "\n".join(lines)

    def failed_text(self) -> str:
        """What failed, counted: "3 symbols failed", "archive failed", or both (the parts of the
        run named up to ``NAMED_PARTS``, then counted: the lines below name each)."""
        units = sum(1 for f in self.failures if f.counted)
        parts = [f"{units} {self.unit} failed"] if units else []
        others = [f"{f.unit} failed" for f in self.failures if not f.counted]
        extra = len(others) - NAMED_PARTS
        return ", ".join(parts + others[:NAMED_PARTS] + ([f"{extra} more failed"] if extra > 0 else []))

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` object and the ledger's summary (lists capped, with their full counts)."""
        return {
            "step": self.step,
            "status": self.outcome.value,
            "exit_code": self.exit_code,
            "seconds": round(self.elapsed, 3),
            "counts": self.counts(),
            "done": self.done,
            "unit": self.unit,
            "failed": len(self.failures),
            "failures": [f.as_dict() for f in self.failures[:LISTED_AT_MOST]],
            "notes": self.notes[:LISTED_AT_MOST],
            "notes_total": len(self.notes),
            "nothing_reason": self.nothing_reason,
            **self.details_dict(),
        }


def _more(items: list[Any], what: str) -> list[str]:
    extra = len(items) - LISTED_AT_MOST
    return [f"  … and {extra} more {what}"] if extra > 0 else []
