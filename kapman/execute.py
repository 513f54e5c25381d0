"""The plumbing every step shares, written once: ``execute(step, settings, params, progress)``.

It validates the parameters (``params.validate()``, the only validation), resolves the database
URL, takes the step's guard (the nightly's lock), opens the ledger row (``db.runs.recorded``),
hands the body a ``Context`` whose connections and clients it closes, maps a lost connection to
``ConnectionLost`` (saying how many units were done), turns SIGTERM and SIGHUP into the same interruption as
Ctrl-C (``kapman.signals``: the ledger row says ``interrupted``, the command exits 143 or 129; Ctrl-C 130),
and returns the result.  A step's body does its work and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import psycopg

from kapman import signals
from kapman.config import Settings
from kapman.db import runs
from kapman.db.connect import connect
from kapman.db.errors import is_connection_lost
from kapman.errors import ConnectionLost
from kapman.progress import NullProgress, Progress
from kapman.registry import Step, get
from kapman.step import StepResult

if TYPE_CHECKING:
    import uuid

    from kapman.providers.polygon import PolygonClient


class Params(Protocol):
    def validate(self) -> None: ...


P = TypeVar("P", bound=Params)
D = TypeVar("D")


@dataclass
class Context:
    """What a body works with; everything it opens through here is closed by ``execute``."""

    step: Step
    settings: Settings
    url: str
    progress: Progress
    result: StepResult[Any]
    stack: ExitStack
    #: The run's ledger row (None when the step records none, e.g. a dry run).
    ledger: runs.Run | None = None
    _conn: psycopg.Connection | None = field(default=None, repr=False)

    @property
    def conn(self) -> psycopg.Connection:
        """The step's connection, opened on first use."""
        if self._conn is None:
            self._conn = self.connect()
        return self._conn

    @property
    def run_id(self) -> uuid.UUID | None:
        return self.ledger.run_id if self.ledger is not None else None

    def connect(self) -> psycopg.Connection:
        """A further connection of the step's own."""
        return self.stack.enter_context(connect(self.url))

    def client(self, **overrides: Any) -> PolygonClient:
        """A REST client on the settings (``overrides`` as ``PolygonClient.from_settings``)."""
        from kapman.providers.polygon import PolygonClient

        client = PolygonClient.from_settings(self.settings, **overrides)
        self.stack.callback(client.close)
        return client

    def enter(self, manager: AbstractContextManager[Any]) -> Any:
        """Hold ``manager`` (a source, a pause of policy jobs) until the body ends."""
        return self.stack.enter_context(manager)


@dataclass(frozen=True)
class Definition(Generic[P, D]):
    """A step's parameters, details and body (the registry's ``Step`` holds its name and command)."""

    params: type[P]
    body: Callable[[Context, P], StepResult[D] | None]
    details: Callable[[], D] | None = None   # the typed details a run starts with
    #: The ledger row's arguments; default: the parameters as a dict.
    ledger_args: Callable[[P], dict[str, Any]] | None = None
    #: False: the body records its own row (the rebuild creates the ledger it writes to); or a
    #: function of the parameters (a dry run records nothing).
    ledger: bool | Callable[[P], bool] = True
    #: Entered before the ledger row (the nightly's lock: a second nightly leaves no row).
    guard: Callable[[str, P], AbstractContextManager[Any]] | None = None
    #: The parameters the nightly runs the step with, from its plan's arguments.
    planned: Callable[..., P] | None = None


def execute(step: Step | str, settings: Settings, params: Any, progress: Progress | None = None) -> StepResult[Any]:
    """Run ``step`` with ``params``: validated, recorded, its resources closed, its errors mapped."""
    step = get(step) if isinstance(step, str) else step
    definition = step.definition()
    if not isinstance(params, definition.params):
        raise TypeError(f"{step.name} takes {definition.params.__name__}, not {type(params).__name__}")
    params.validate()
    url = settings.require_database_url()
    details = definition.details() if definition.details is not None else None
    result: StepResult[Any] = StepResult(step.name, unit=step.unit, details=details)
    with signals.as_interrupts(), ExitStack() as outer:
        if definition.guard is not None:
            outer.enter_context(definition.guard(url, params))
        ledger = None
        if definition.ledger(params) if callable(definition.ledger) else definition.ledger:
            args = definition.ledger_args(params) if definition.ledger_args else _as_args(params)
            ledger = outer.enter_context(runs.recorded(url, step.name, args))
            ledger.result = result
        try:
            with ExitStack() as resources:   # closed before the ledger row is finished
                ctx = Context(step, settings, url, progress or NullProgress(), result, resources, ledger)
                returned = definition.body(ctx, params)
                if returned is not None:
                    result = returned
                    if ledger is not None:
                        ledger.result = result
        except (psycopg.Error, ConnectionLost) as exc:
            lost = lost_connection(exc, result)
            if lost is None or lost is exc:
                raise
            raise lost from exc
    return result.stop_clock()


def lost_connection(exc: BaseException, result: StepResult[Any]) -> ConnectionLost | None:
    """The one mapping of a dropped connection: ``ConnectionLost`` naming the units done (one that
    already names them, a step run by the nightly or the options pipeline's, is kept)."""
    if isinstance(exc, ConnectionLost) and exc.done is not None:
        return exc
    if isinstance(exc, ConnectionLost) or is_connection_lost(exc):
        return ConnectionLost(result.units_done(), result.unit)
    return None


def _as_args(params: Any) -> dict[str, Any]:
    return asdict(params) if is_dataclass(params) and not isinstance(params, type) else dict(vars(params))

