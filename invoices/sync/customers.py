"""Customers of either provider: every page, each written as it comes (resumed after a failure)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from invoices.models import SyncProblem
from invoices.sync.mirror import upsert_customers
from invoices.sync.pages import RunRecorder
from invoices.sync.quarantine import record_problems
from invoices.sync.walk import customer_pages


def customers(provider: str):
    def run(client, recorder: RunRecorder, renew) -> int:
        pages = customer_pages(client, provider)
        for page in pages:
            with transaction.atomic():
                counts = upsert_customers(provider=provider, remotes=page.items)
                counts.quarantined = record_problems(
                    provider=provider,
                    kind=SyncProblem.Kind.CUSTOMER,
                    problems=page.problems,
                    written=[remote.remote_id for remote in page.items],
                    now=timezone.now(),
                )
                recorder.add(counts)
            renew()
        return 0

    return run
