"""SQLAlchemy engine listeners that time each statement with a probe: the shared mechanics.

``before_cursor_execute`` opens the probe a subclass picks for the statement and leaves it
in the connection's own ``info`` dict: a DB connection runs one statement at a time, and
``handle_error`` is given the connection, not the cursor. ``after_cursor_execute`` and
``handle_error`` take it out and close it, the latter with the statement's exception.
:mod:`hypoprobe.integrations.sqlalchemy` and the survey both listen this way.

SQLAlchemy is imported only by :meth:`_Listeners.listen` and :meth:`_Listeners.remove`:
the survey holds its listeners before the application imports SQLAlchemy, if it ever does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import _faults

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, ExceptionContext

__all__: list[str] = []

_EVENTS = ("before_cursor_execute", "after_cursor_execute", "handle_error")


class _Listeners:
    """The three event handlers of one instrumentation, and the probes they have open.

    A subclass sets :attr:`key` and :attr:`faults` and says, in :meth:`_probe`, which
    probe times a statement (None: not this one).

    Example::

        class _Everything(_Listeners):
            key = "myapp.open"
            faults = ("myapp_before", "myapp_after", "myapp_error")

            def _probe(self, conn, statement):
                return probe("PERF-1", name="every statement")
    """

    #: The connection ``info`` key of the open probe; one per instrumentation.
    key: str
    #: The internal-error kinds of a failure in before, after and handle_error.
    faults: tuple[str, str, str]

    def _probe(self, conn: Connection, statement: str) -> Any:
        raise NotImplementedError

    # The signatures of before/after are SQLAlchemy's event contract.
    def before(  # noqa: PLR0917
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        try:
            opened = self._probe(conn, statement)
            if opened is None:
                return
            opened.__enter__()
            conn.info[self.key] = opened
        except Exception:
            _faults.record(self.faults[0])

    def after(  # noqa: PLR0917
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        try:
            opened = conn.info.pop(self.key, None)
            if opened is not None:
                opened.__exit__(None, None, None)
        except Exception:
            _faults.record(self.faults[1])

    def error(self, ctx: ExceptionContext) -> None:
        try:
            conn = ctx.connection
            opened = None if conn is None else conn.info.pop(self.key, None)
            if opened is not None:
                exc = ctx.original_exception
                opened.__exit__(type(exc), exc, exc.__traceback__)
        except Exception:
            _faults.record(self.faults[2])

    def listen(self, engine: Engine | type[Engine]) -> None:
        """Listen on one engine, or on the ``Engine`` class (every engine)."""
        from sqlalchemy import event

        for name, handler in zip(_EVENTS, self._handlers(), strict=True):
            event.listen(engine, name, handler)

    def remove(self, engine: Engine | type[Engine]) -> None:
        """Stop listening where :meth:`listen` did."""
        from sqlalchemy import event

        for name, handler in zip(_EVENTS, self._handlers(), strict=True):
            event.remove(engine, name, handler)

    def _handlers(self) -> tuple[Any, Any, Any]:
        return self.before, self.after, self.error
