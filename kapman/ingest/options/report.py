"""What an options run did: per-symbol outcomes and totals, rendered as the step's ``StepResult``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from kapman.errors import KapManError
from kapman.ingest.options.normalise import DROP_LABELS
from kapman.step import StepResult

if TYPE_CHECKING:  # the archive (and pyarrow) load only when a run archives
    from kapman.archive.export import ExportReport

#: Outcomes that complete a symbol ('empty': the provider listed no contracts).
SUCCEEDED = ("ok", "empty")
#: Symbols named per note; more are elided (the JSON output has them all).
SHOWN = 20


@dataclass
class SymbolOutcome:
    status: str = "pending"  # ok, empty, failed, not_attempted (planned for --dry-run)
    reason: str = ""
    pages: int = 0
    contracts: int = 0  # results the provider returned
    rows: int = 0  # rows after drops
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # rows of an earlier run under the same snapshot time, absent from this chain
    unpriced: int = 0  # rows without an underlying price
    unquoted: int = 0  # rows without a bid and an ask
    not_numbers: dict[str, int] = field(default_factory=dict)  # per field: values not numbers, stored NULL
    not_number_examples: dict[str, str] = field(default_factory=dict)  # per field: the first one
    held: int = 0  # stored contracts kept as they were: this run's values for them could not be read
    dropped: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # fetching, normalising and encoding
    retryable: bool = False  # failed on something a later pass may not meet (a 5xx, a timeout, a deadline)


@dataclass
class OptionsResult:
    snapshot_time: datetime
    concurrency: int
    workers: int = 0  # processes decoding and encoding the chains (0: the fetch threads did)
    dry_run: bool = False
    outcomes: dict[str, SymbolOutcome] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    contracts: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_removed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0
    retention: str = ""
    stopped: str = ""
    run_id: UUID | None = None
    archive: ExportReport | None = None  # None: --no-archive (or a dry run)
    #: The error that stopped the run (401, lost database); the step raises it once recorded.
    error: KapManError | None = field(default=None, repr=False)

    def by_status(self, status: str) -> list[str]:
        return [s for s, o in self.outcomes.items() if o.status == status]

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    def step_result(self) -> StepResult[OptionsResult]:
        """The step's result, with this run as its typed details."""
        result = StepResult(
            "options",
            unit="symbols",
            read=self.contracts,
            written=self.rows_inserted + self.rows_updated,
            unchanged=self.rows_unchanged,
            rejected=sum(self.dropped.values()),
            removed=self.rows_removed,
            done=self.units_done(),
            headline=self._headline(),
            details=self,
        )
        for symbol in self.by_status("failed"):
            result.fail(symbol, self.outcomes[symbol].reason)
        for symbol in self.by_status("not_attempted"):
            result.fail(symbol, self.outcomes[symbol].reason or "not attempted")
        for note in self._notes():
            result.note(note)
        if self.archive is not None:
            archive_outcome(result, self.archive)
        result.seconds = self.seconds
        return result

    def _headline(self) -> str:
        when = self.snapshot_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.dry_run:
            plural = "" if self.workers == 1 else "es"
            return (f"dry run: would fetch {len(self.outcomes)} symbols for snapshot {when} with concurrency "
                    f"{self.concurrency} and {self.workers} worker process{plural}: {_names(list(self.outcomes))}")
        counts = ", ".join(
            f"{len(self.by_status(s))} {s.replace('_', ' ')}"
            for s in ("ok", "empty", "failed", "not_attempted")
            if self.by_status(s) or s == "ok"
        )
        rate = self.rows_written / self.write_seconds if self.write_seconds else 0.0
        dropped = ", ".join(f"{v} {DROP_LABELS.get(k, k)}" for k, v in self.dropped.items() if v)
        return (f"snapshot {when}: {len(self.outcomes)} symbols ({counts}); {self.rows_inserted} rows inserted, "
                f"{self.rows_updated} updated from {self.contracts} contracts (dropped {dropped or 'none'}); "
                f"{self.pages} pages, {self.requests} requests, {self.retries} retries; writing "
                f"{self.write_seconds:.1f}s ({rate:,.0f} rows/s)")

    def _notes(self) -> list[str]:
        notes = [f"empty {s}: {self.outcomes[s].reason}" for s in self.by_status("empty")[:SHOWN]]
        unpriced = [s for s, o in self.outcomes.items() if o.rows and o.unpriced == o.rows]
        if unpriced:
            notes.append(f"no underlying price in the chains of {_names(unpriced)} (underlying_asset.price "
                         "depends on the stocks plan): underlying_price stored NULL; A3 takes the day's close")
        unquoted = [s for s, o in self.outcomes.items() if o.rows and o.unquoted == o.rows]
        if unquoted:
            notes.append(f"no last_quote in the chains of {_names(unquoted)} (a plan without quotes): "
                         "bid and ask stored NULL")
        not_numbers = [f"{s} ({_not_numbers(o)})" for s, o in self.outcomes.items() if o.not_numbers]
        if not_numbers:
            notes.append("values sent as text (or another non-number) read as NULL, contracts kept: "
                         f"{_names(not_numbers)}")
        held = [f"{s} ({o.held})" for s, o in self.outcomes.items() if o.held]
        if held:
            total = sum(o.held for o in self.outcomes.values())
            notes.append(f"{total} contract{'s' if total > 1 else ''} kept {'their' if total > 1 else 'its'} "
                         f"stored values because the new ones could not be read: {_names(held)}")
        malformed = [f"{s} ({'; '.join(o.samples)})" for s, o in self.outcomes.items() if o.samples]
        if malformed:
            notes.append(f"malformed contracts, e.g. {_names(malformed)}")
        if self.skipped:
            left_out = [f"{s} ({why})" for s, why in sorted(self.skipped.items())]
            notes.append(f"skipped (active watchlist symbols out of the scope): {_names(left_out)}")
        if self.retention:
            notes.append(self.retention)
        return notes

    def units_done(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.status in SUCCEEDED)

    def retryable(self) -> list[str]:
        """The symbols that failed on something a later pass may not meet (a 5xx, a timeout)."""
        return [s for s, o in self.outcomes.items() if o.retryable]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` object's and the ledger's details of the run."""
        return {
            "snapshot_time": self.snapshot_time.isoformat(),
            "dry_run": self.dry_run,
            "concurrency": self.concurrency,
            "workers": self.workers,
            "outcomes": {s: asdict(o) for s, o in self.outcomes.items()},
            "retryable": self.retryable(),
            "skipped": self.skipped,
            "dropped": self.dropped,
            "pages": self.pages,
            "requests": self.requests,
            "retries": self.retries,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged,
            "rows_removed": self.rows_removed,
            "write_seconds": round(self.write_seconds, 3),
            "stopped": self.stopped,
            "retention": self.retention,
            "run_id": str(self.run_id) if self.run_id else None,
            **({"archive": self.archive.as_dict()} if self.archive is not None else {}),
        }


def _names(symbols: list[str]) -> str:
    more = len(symbols) - SHOWN
    return " ".join(symbols[:SHOWN]) + (f" and {more} more" if more > 0 else "")


def _not_numbers(outcome: SymbolOutcome) -> str:
    """``open_interest: 12 values, e.g. '10'; ...``: a symbol's values that were not numbers, per field."""
    return "; ".join(f"{name}: {count} value{'s' if count > 1 else ''}, e.g. {outcome.not_number_examples[name]}"
                     for name, count in sorted(outcome.not_numbers.items()))


def archive_outcome(result: StepResult[Any], report: ExportReport) -> None:
    """The archive's part of a run's result: a note, or (the archive could not be written) a failure
    that keeps the rows and makes the run partial."""
    if report.ok:
        result.note(report.line())
    else:
        result.fail("archive", report.line(), counted=False)
