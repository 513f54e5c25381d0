"""One exception tree for the whole project.

Every error carries structured fields and builds its own message; whether an error is worth
retrying is a property of its class (``transient``), never of its message text.  The CLI maps
classes to exit codes (see ``kapman.cli``).
"""

from __future__ import annotations

from kapman import registry


class KapManError(Exception):
    """Root of every error KapMan raises on purpose."""

    transient: bool = False
    #: Exit code when this error ends a command (2: usage, configuration or total failure).
    exit_code: int = 2
    #: One line telling the user what to do about it; printed after the message.
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(KapManError):
    """A setting is missing or invalid."""


class UsageError(KapManError):
    """Arguments that cannot work together, or a precondition of the runbook not met."""


class InputError(KapManError):
    """Bad input data, named by file and line (or symbol)."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        where = source if source else ""
        if source and line is not None:
            where = f"{source}:{line}"
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.source = source
        self.line = line


class DatabaseError(KapManError):
    """A database operation failed; ``sqlstate`` classifies it (see ``kapman.db.errors``)."""

    def __init__(self, message: str, *, sqlstate: str | None = None, transient: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate
        self.transient = transient


class ProviderError(KapManError):
    """A market-data provider (REST API or flat files) failed."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None,
                 symbol: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.url = url
        self.symbol = symbol


class AuthError(ProviderError):
    """401: the key is missing or wrong. Stops the whole run."""


class EntitlementError(ProviderError):
    """403: the plan does not include this data. Stops the request, not necessarily the run."""


class TransientProviderError(ProviderError):
    """429, 5xx, timeouts, dropped connections: worth retrying with backoff."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RateLimitedError(TransientProviderError):
    """429 Too Many Requests."""


class DeadlineError(ProviderError):
    """A request could not finish within its deadline or the run's (retries and waits included).

    ``run``: the run's deadline passed (nothing more can be fetched), not only this request's.
    """

    def __init__(self, message: str, *, run: bool = False, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(message, **kw)
        self.run = run


class PaginationError(ProviderError):
    """The server's cursors loop or never end."""


class NotFoundError(ProviderError):
    """The object does not exist (e.g. no flat file for a holiday)."""


class ConnectionLost(DatabaseError):
    """The database connection dropped mid-step (server restart, a rebuild terminating sessions).

    Work committed before it is kept; a rerun resumes from the database."""

    def __init__(self, done: int | None = None, unit: str = "units") -> None:
        after = f" after {done} {unit}" if done is not None else ""
        super().__init__(f"the database connection was lost{after}; rerun to resume", sqlstate="08006",
                         transient=True, hint="check that the database server is up"
                         + registry.in_checkout(" (./dev.sh db status)", ""))
        self.done = done
        self.unit = unit

