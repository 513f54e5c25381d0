"""The typed result of an options run: per-symbol outcomes, totals, summary and exit code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from kapman.errors import KapManError

#: Outcomes that count as success for the exit code ('empty': the provider listed no contracts).
SUCCEEDED = ("ok", "empty")
#: Symbols named per line in the summary; more are elided (the JSON output has them all).
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
    dropped: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # fetching, normalising and encoding


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
    dropped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0
    retention: str = ""
    stopped: str = ""
    run_id: UUID | None = None
    #: The error that stopped the run (401, lost database); raised again by the entrypoint.
    error: KapManError | None = field(default=None, repr=False)

    def by_status(self, status: str) -> list[str]:
        return [s for s, o in self.outcomes.items() if o.status == status]

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    def exit_code(self) -> int:
        """0 all succeeded, 1 some failed, 2 none succeeded or the run was stopped."""
        if self.error is not None:
            return self.error.exit_code
        if self.dry_run:
            return 0
        good = sum(1 for o in self.outcomes.values() if o.status in SUCCEEDED)
        if good == len(self.outcomes) and self.outcomes:
            return 0
        return 1 if good else 2

    def status(self) -> str:
        """The ledger's status: ok, partial or failed."""
        return {0: "ok", 1: "partial"}.get(self.exit_code(), "failed")

    def summary(self) -> str:
        when = self.snapshot_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.dry_run:
            lines = [
                f"options dry run: would fetch {len(self.outcomes)} symbols for snapshot {when} "
                f"with concurrency {self.concurrency} and {self.workers} worker "
                f"process{'' if self.workers == 1 else 'es'}: "
                f"{_names(list(self.outcomes))}"
            ]
        else:
            rate = self.rows_written / self.write_seconds if self.write_seconds else 0.0
            dropped = ", ".join(f"{k} {v}" for k, v in self.dropped.items())
            counts = ", ".join(
                f"{len(self.by_status(s))} {s.replace('_', ' ')}"
                for s in ("ok", "empty", "failed", "not_attempted")
                if self.by_status(s) or s == "ok"
            )
            lines = [
                f"options snapshot {when}: {len(self.outcomes)} symbols ({counts}); "
                f"{self.rows_written} rows ({self.rows_inserted} inserted, {self.rows_updated} updated, "
                f"{self.rows_unchanged} unchanged) from {self.contracts} contracts; "
                f"dropped {sum(self.dropped.values())} ({dropped}); {self.pages} pages, "
                f"{self.requests} requests, {self.retries} retries; {self.seconds:.1f}s "
                f"(writing {self.write_seconds:.1f}s, {rate:,.0f} rows/s)"
            ]
            for status in ("failed", "empty"):
                lines += [
                    f"  {status} {s}: {self.outcomes[s].reason}" for s in self.by_status(status)[:SHOWN]
                ]
            missed = self.by_status("not_attempted")
            if missed:
                lines.append(f"  not attempted ({self.stopped}): {_names(missed)}")
            malformed = [f"{s} ({'; '.join(o.samples)})" for s, o in self.outcomes.items() if o.samples]
            if malformed:
                lines.append(f"  malformed contracts, e.g. {_names(malformed)}")
        if self.skipped:
            lines.append(f"  skipped (watchlist symbols without a ticker): {_names(sorted(self.skipped))}")
        if self.retention:
            lines.append(f"  {self.retention}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "error"}
        data["outcomes"] = {s: asdict(o) for s, o in self.outcomes.items()}
        data["snapshot_time"] = self.snapshot_time.isoformat()
        data["rows_written"] = self.rows_written
        data["seconds"], data["write_seconds"] = round(self.seconds, 3), round(self.write_seconds, 3)
        data["exit_code"] = self.exit_code()
        return data


def _names(symbols: list[str]) -> str:
    more = len(symbols) - SHOWN
    return " ".join(symbols[:SHOWN]) + (f" and {more} more" if more > 0 else "")
