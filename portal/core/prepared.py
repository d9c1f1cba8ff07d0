"""Querysets built and compiled once, run many times with new values.

Building a queryset (filters, joins, annotations) and compiling it to SQL costs Django about a
millisecond for the queries every signed-in page makes (the access check, the frame's switchers);
the database answers them in a tenth of that. `PreparedQuery` builds its queryset once per thread
and database around *stand-in* values, finds where each stand-in went among the SQL's parameters,
and from then on sends the same SQL with the request's values in those places. Rows are converted
by the same compiler, so they come back as the queryset's `values_list()` would return them.

Stand-ins are ints, strings or aware datetimes. A datetime goes into the SQL as the database
takes a DateTimeField's value (a UTC string on SQLite), and each new value is converted the same
way. A stand-in that the ORM transformed on its way into the SQL (say `icontains`, which wraps it
in %…%) cannot be found and raises at the first use: such a query is not prepared silently wrong.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet


class PreparedQuery:
    def __init__(self, build: Callable[..., QuerySet], **stand_ins: object) -> None:
        """`build(**values)` returns a `values_list()` queryset; `stand_ins` are values for it that
        appear nowhere else in the query (odd strings, unlikely numbers), one per argument."""
        if len({repr(value) for value in stand_ins.values()}) != len(stand_ins):
            raise ValueError("each stand-in must differ from the others")
        self._build = build
        self._stand_ins = stand_ins
        self._local = threading.local()

    @staticmethod
    def _slots(stand_ins: dict, params, connection) -> list[tuple[str | None, object]]:
        """Each SQL parameter as (the stand-in's name, value) or (None, a constant of the query)."""
        sent = {name: _as_sent(value, connection) for name, value in stand_ins.items()}
        slots = []
        for param in params:
            name = next((n for n, v in sent.items() if type(v) is type(param) and v == param), None)
            if name is None and any(
                isinstance(v, str) and isinstance(param, str) and v in param for v in stand_ins.values()
            ):
                raise ValueError(f"a stand-in was transformed on its way into the SQL: {param!r}")
            slots.append((name, param))
        missing = set(stand_ins) - {name for name, _ in slots}
        if missing:
            raise ValueError(
                f"stand-ins not found among the SQL's parameters: {sorted(missing)} (a lookup "
                "transformed them, or the query does not use them)"
            )
        return slots

    def _compiled(self, using: str):
        compiled = getattr(self._local, using, None)
        connection = connections[using]
        if compiled is None or compiled[0] is not connection:
            compiler = self._build(**self._stand_ins).query.get_compiler(using=using)
            sql, params = compiler.as_sql()
            slots = self._slots(self._stand_ins, params, connection)
            # Built again around other stand-ins, the SQL must not change and the stand-ins must
            # land in the same places: this catches SQL that depends on the value (None becoming
            # IS NULL) and a constant of the query that happens to equal a stand-in.
            others = {name: _other(value) for name, value in self._stand_ins.items()}
            other_sql, other_params = self._build(**others).query.get_compiler(using=using).as_sql()
            other_slots = self._slots(others, other_params, connection)
            if other_sql != sql or [n for n, _ in other_slots] != [n for n, _ in slots]:
                raise ValueError("the query's SQL depends on the values it is given: it can't be prepared")
            # As results_iter() would find them on every call: which columns need converting, how.
            converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
            compiled = (connection, compiler, sql, slots, converters)
            setattr(self._local, using, compiled)
        return compiled

    def rows(self, using: str = DEFAULT_DB_ALIAS, **values: object) -> list[tuple]:
        """The queryset `build(**values)` would return, as tuples."""
        if values.keys() != self._stand_ins.keys():
            raise TypeError(f"expected values for {sorted(self._stand_ins)}, got {sorted(values)}")
        connection, compiler, sql, slots, converters = self._compiled(using)
        sent = {name: _as_sent(value, connection) for name, value in values.items()}
        params = [sent[name] if name else constant for name, constant in slots]
        with compiler.connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        width = compiler.col_count
        rows = (row[:width] for row in fetched)
        if converters:
            rows = compiler.apply_converters(rows, converters)
        return [tuple(row) for row in rows]


def _as_sent(value: object, connection) -> object:
    """The value as the SQL's parameters hold it."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _other(value: object) -> object:
    """Another stand-in of the same type."""
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, int):
        return value - 1
    if isinstance(value, str):
        return value + "~"
    raise TypeError(f"stand-ins are int, str or datetime, not {type(value).__name__}")
