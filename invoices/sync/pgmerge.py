"""A page of a provider's invoices written the PostgreSQL way: one set-based statement.

The page (or a group of pages) travels as one JSON document, a single parameter. One ``WITH``
statement finds our rows for its remote ids (an index probe each), locks them in id order,
compares them with ``IS DISTINCT FROM`` and writes only what has to change: changed rows, local
creates it adopts, new rows (``ON CONFLICT DO NOTHING``) and, unless a scan keeps the sightings in
memory, the ``last_seen_at`` stamp of unchanged rows. It answers with the counts, the ids of the
rows it saw without writing them, and the old values of the rows it changed or adopted, from which
:mod:`invoices.sync.mirror` writes the events.

The rules are those of the ORM version in :mod:`invoices.sync.mirror` (used on SQLite); the tests run
both.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import NamedTuple

import orjson
from django.db import connection
from psycopg.types.json import Jsonb

from invoices.models import MIRRORED_FIELDS, Invoice, PendingAction, SyncState

#: What a page brings for each row, in the order of each row's array in the document.
INCOMING = ("remote_id", *MIRRORED_FIELDS)
#: Old values sent back for the rows written, to describe the change (raw is not described).
DESCRIBED = tuple(c for c in INCOMING if c not in ("remote_id", "raw"))
#: Columns a new row gets from the statement; every other column gets the model's default.
WRITTEN = {*INCOMING, "id", "provider", "customer_id", "sync_state", "last_synced_at", "last_seen_at",
           "created_at", "updated_at"}  # fmt: skip


class Written(NamedTuple):
    kind: str  # "updated" or "adopted"
    invoice_id: int
    remote_id: str
    removed_at: datetime | None  # before the write: set when the provider lists the row again
    old: dict  # the DESCRIBED columns before the write


class Merged(NamedTuple):
    created: int
    unchanged: int
    skipped: int
    lost: int  # new rows a concurrent run inserted first
    seen: list[int]  # ids of the rows seen and not written (unchanged or skipped), when asked for
    written: list[Written]


def merge_page(
    *,
    provider: str,
    rows: list[tuple],
    fetched_at: datetime,
    now: datetime,
    stamp_unchanged: bool,
) -> Merged:
    """Write one page: ``rows`` hold the remote id and the mirrored values (:data:`INCOMING`, in
    that order), one row per remote id.
    With ``stamp_unchanged`` False, unchanged rows are not written at all and their ids come back
    in ``seen`` instead."""
    with _server_bound_cursor() as cursor:
        # A few index probes a row, done in milliseconds: compiling it would take longer.
        cursor.execute("SELECT set_config('jit', 'off', true)")
        cursor.execute(
            merge_sql(),
            merge_params(
                provider=provider,
                rows=rows,
                fetched_at=fetched_at,
                now=now,
                stamp_unchanged=stamp_unchanged,
            ),
        )
        result = cursor.fetchall()
    written = []
    for kind, totals, seen, invoice_id, remote_id, removed_at, *old in result:
        if kind == "counts":
            created, unchanged, skipped, matched = totals
            seen_ids = seen or []
        else:
            written.append(
                Written(kind, invoice_id, remote_id, removed_at, dict(zip(DESCRIBED, old, strict=True)))
            )
    adopted = sum(1 for w in written if w.kind == "adopted")
    return Merged(
        created=created,
        unchanged=unchanged,
        skipped=skipped,
        lost=len(rows) - created - matched - adopted,
        seen=seen_ids,
        written=written,
    )


def _server_bound_cursor():
    """A cursor that sends the values apart from the statement (psycopg's server-side binding):
    the page's JSON document, a megabyte for a group of Qonto invoices, then travels as it is
    instead of being escaped into the SQL text and read back by the server's parser."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    # The wrapping connection.cursor() does: query logging, thread checks, error translation.
    return connection._prepare_cursor(ServerBindingCursor(connection.connection))


def merge_params(
    *, provider: str, rows: list[tuple], fetched_at: datetime, now: datetime, stamp_unchanged: bool
) -> dict:
    params = dict(
        # One JSON document for the whole page: a single parameter, encoded and decoded in C and
        # handed to the driver as the encoder's bytes. Dates and datetimes in ISO 8601, amounts as
        # their exact decimal text.
        rows=Jsonb(rows, dumps=_encode_rows),
        provider=provider,
        fetched_at=fetched_at,
        now=now,
        stamp=stamp_unchanged,
        synced=SyncState.SYNCED,
        sending=SyncState.SENDING,
        pending=SyncState.PENDING,
        create=PendingAction.CREATE,
    )
    fields = {f.column: f for f in Invoice._meta.concrete_fields}
    for column in _defaults():
        field = fields[column]
        params[f"default_{column}"] = field.get_db_prep_save(field.get_default(), connection)
    return params


def _encode_rows(rows: list[tuple]) -> bytes:
    return orjson.dumps(rows, default=str)


def _from_json(column: str, position: int) -> str:
    """The SQL that reads ``column`` from element ``position`` of a row array ``r``."""
    field = Invoice._meta.get_field(column)
    if field.get_internal_type() == "JSONField":
        return f"r -> {position}"
    if field.get_internal_type() in ("CharField", "TextField", "URLField"):
        return f"r ->> {position}"  # text, not varchar(n): that cast would cut a long value
    return f"(r ->> {position})::{field.db_type(connection)}"


@cache
def _defaults() -> tuple[str, ...]:
    return tuple(
        f.column
        for f in Invoice._meta.concrete_fields
        if f.column not in WRITTEN and not getattr(f, "auto_now", False)
    )


@cache
def merge_sql() -> str:
    mirrored = [c for c in INCOMING if c != "remote_id"]
    customer = (
        "(SELECT c.id FROM invoices_customer c"
        " WHERE c.provider = %(provider)s AND c.remote_id = i.customer_remote_id)"
    )
    set_new = ", ".join(f"{c} = i.{c}" for c in mirrored)
    defaults = _defaults()
    stamps = ("last_synced_at", "last_seen_at", "created_at", "updated_at")
    insert_columns = ", ".join(("provider", *INCOMING, "customer_id", "sync_state", *stamps, *defaults))
    insert_values = ", ".join(
        (
            "%(provider)s",
            *(f"i.{c}" for c in INCOMING),
            customer,
            "%(synced)s",
            *(["%(now)s"] * len(stamps)),
            *(f"%(default_{c})s" for c in defaults),
        )
    )
    old = ", ".join(f"o.{c}" for c in DESCRIBED)
    no_old = ", ".join(["NULL"] * len(DESCRIBED))
    # Built from the model's column names only; every value travels as a parameter.
    return f"""
WITH incoming AS (
    SELECT {", ".join(f"{_from_json(c, n)} AS {c}" for n, c in enumerate(INCOMING))}, ord
    FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS page (r, ord)
),
existing AS MATERIALIZED (
    -- One probe of the unique index per remote id, then the rows locked in id order. Probes
    -- rather than a join: statistics lag behind during a first large sync, and a join planned
    -- on them reads the whole table for every page.
    SELECT inv.* FROM invoices_invoice inv
    WHERE inv.id = ANY(ARRAY(
        SELECT (SELECT x.id FROM invoices_invoice x
                WHERE x.provider = %(provider)s AND x.remote_id = i.remote_id)
        FROM incoming i
    ))
    ORDER BY inv.id
    FOR UPDATE
),
matched AS MATERIALIZED (
    SELECT i.*, e.id AS invoice_id,
        (e.pending_action <> '' AND e.sync_state IN (%(pending)s, %(sending)s))
            OR coalesce(e.pushed_at > %(fetched_at)s, false) AS skip,
        ROW({", ".join(f"i.{c}" for c in mirrored)}) IS DISTINCT FROM ROW({", ".join(f"e.{c}" for c in mirrored)})
            OR e.removed_at IS NOT NULL AS changed
    FROM incoming i JOIN existing e ON e.remote_id = i.remote_id
),
candidates AS MATERIALIZED (
    -- Local creates that may have reached the provider without us hearing back: by number for
    -- the new remote ids, then locked in id order.
    SELECT a.* FROM invoices_invoice a
    WHERE a.id = ANY(ARRAY(
        SELECT unnest(ARRAY(
            -- IS NOT DISTINCT FROM keeps the provider index (two values) out of this probe.
            SELECT x.id FROM invoices_invoice x
            WHERE x.number = i.number AND x.remote_id IS NULL AND x.provider IS NOT DISTINCT FROM %(provider)s
        ))
        FROM incoming i
        WHERE i.number <> '' AND NOT EXISTS (SELECT FROM existing e WHERE e.remote_id = i.remote_id)
    ))
      -- Checked on the row as locked: a worker may have claimed it meanwhile.
      AND a.remote_id IS NULL AND a.sync_state <> %(sending)s
      AND (a.outcome_unknown OR (a.pending_action = %(create)s AND a.sync_state = %(pending)s))
    ORDER BY a.id
    FOR UPDATE
),
adoptions AS MATERIALIZED (
    -- The first new remote id with a number adopts the oldest local create with it.
    SELECT DISTINCT ON (c.number) c.id AS invoice_id, i.ord
    FROM candidates c JOIN incoming i ON i.number = c.number
    WHERE NOT EXISTS (SELECT FROM existing e WHERE e.remote_id = i.remote_id)
    ORDER BY c.number, c.id, i.ord
),
changed AS (
    UPDATE invoices_invoice inv SET {set_new}, customer_id = coalesce({customer}, inv.customer_id),
        removed_at = NULL, last_synced_at = %(now)s, last_seen_at = %(now)s
    FROM matched i JOIN existing o ON o.id = i.invoice_id
    WHERE inv.id = i.invoice_id AND NOT i.skip AND i.changed
    RETURNING inv.id, o.remote_id::text, o.removed_at, {old}
),
stamped AS (
    UPDATE invoices_invoice inv SET last_seen_at = %(now)s
    FROM matched i
    WHERE %(stamp)s AND inv.id = i.invoice_id AND NOT i.skip AND NOT i.changed
),
adopted AS (
    UPDATE invoices_invoice inv SET {set_new}, remote_id = i.remote_id,
        customer_id = coalesce({customer}, inv.customer_id), removed_at = NULL,
        last_synced_at = %(now)s, last_seen_at = %(now)s, sync_state = %(synced)s,
        pending_action = '', outcome_unknown = false, last_error = ''
    FROM adoptions a JOIN incoming i ON i.ord = a.ord JOIN candidates o ON o.id = a.invoice_id
    WHERE inv.id = a.invoice_id
    RETURNING inv.id, i.remote_id, o.removed_at, {old}
),
created AS (
    INSERT INTO invoices_invoice ({insert_columns})
    SELECT {insert_values} FROM incoming i
    WHERE NOT EXISTS (SELECT FROM existing e WHERE e.remote_id = i.remote_id)
      AND NOT EXISTS (SELECT FROM adoptions a WHERE a.ord = i.ord)
    ORDER BY i.ord
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT 'updated', NULL::bigint[], NULL::bigint[], * FROM changed
UNION ALL
SELECT 'adopted', NULL, NULL, * FROM adopted
UNION ALL
SELECT 'counts',
    ARRAY[
        (SELECT count(*) FROM created),
        (SELECT count(*) FROM matched WHERE NOT skip AND NOT changed),
        (SELECT count(*) FROM matched WHERE skip),
        (SELECT count(*) FROM existing)
    ],
    CASE WHEN %(stamp)s THEN NULL
        ELSE ARRAY(SELECT invoice_id FROM matched WHERE skip OR NOT changed ORDER BY invoice_id) END,
    NULL, NULL, NULL, {no_old}
"""  # noqa: S608
