"""Records a provider sent that the mirror cannot hold: kept as sync problems, shown to staff,
skipped. The rest of their page is written and the sync goes on.

Written with the rows of their group, in the same transaction and set-based: a group with
problems upserts them in two statements (first seen kept; last seen, count, payload and message
renewed; a resolved problem reopened) and stamps the mirrored rows of those records as still
listed; every group resolves, in one statement, the open problems of the records it wrote, since
those now map cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime

import orjson
from django.db.models import F
from django.utils import timezone

from integrations.errors import ProviderRecordError
from invoices.models import Invoice, SyncProblem

#: How much of an offending value is kept for display (the whole record is in ``raw``).
VALUE_LENGTH = 2000


def record_problems(
    *,
    provider: str,
    kind: str,
    problems: list[ProviderRecordError],
    written: Collection[str],
    now: datetime,
) -> int:
    """Quarantine ``problems`` and resolve the open problems of the ``written`` remote ids.
    Returns the number of records quarantined (a record listed twice counts once)."""
    by_key = {problem.remote_id: problem for problem in problems}  # the last copy wins
    if by_key:
        SyncProblem.objects.bulk_create(
            [
                SyncProblem(
                    provider=provider,
                    kind=kind,
                    remote_id=key,
                    field=problem.field,
                    value=_text(_value_text(problem.value))[:VALUE_LENGTH],
                    message=_text(problem.message),
                    raw=_storable(problem.raw),
                    first_seen_at=now,
                    last_seen_at=now,
                    seen=0,  # counted below, for new and known problems alike
                    resolved_at=None,
                )
                for key, problem in by_key.items()
            ],
            update_conflicts=True,
            unique_fields=["provider", "kind", "remote_id"],
            update_fields=["field", "value", "message", "raw", "last_seen_at", "resolved_at"],
        )
        SyncProblem.objects.filter(provider=provider, kind=kind, remote_id__in=list(by_key)).update(
            seen=F("seen") + 1
        )
        if kind == SyncProblem.Kind.INVOICE:
            # Still listed, in a form we cannot hold: the row mirrored before is not a removal suspect.
            Invoice.objects.filter(provider=provider, remote_id__in=list(by_key)).update(last_seen_at=now)
    if written:
        SyncProblem.objects.filter(
            provider=provider, kind=kind, resolved_at__isnull=True, remote_id__in=list(written)
        ).update(resolved_at=now)
    return len(by_key)


def resolve_unseen(*, provider: str, kind: str, since: datetime) -> int:
    """A complete pass that began at ``since`` did not meet these problems: the provider corrected
    the record (one without a usable id cannot be matched otherwise) or deleted it."""
    return SyncProblem.objects.filter(
        provider=provider, kind=kind, resolved_at__isnull=True, last_seen_at__lt=since
    ).update(resolved_at=timezone.now())


def _value_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _text(text: str) -> str:
    """PostgreSQL holds no NUL character in text."""
    return text.replace("\x00", "\ufffd")


def _storable(raw: object) -> object:
    """The payload as JSON the database holds: NUL characters replaced; what is not JSON at all
    (only a caller's own objects can be) kept as its text."""
    try:
        encoded = orjson.dumps(raw)
    except TypeError:
        return _text(repr(raw))
    return orjson.loads(encoded.replace(b"\\u0000", b"\\ufffd"))
