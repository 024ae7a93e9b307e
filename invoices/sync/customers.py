"""Customers of either provider: every page, each written as it comes (resumed after a failure)."""

from __future__ import annotations

from invoices.sync.mirror import upsert_customers
from invoices.sync.pages import RunRecorder
from invoices.sync.walk import customer_pages


def customers(provider: str):
    def run(client, recorder: RunRecorder, renew) -> int:
        pages = customer_pages(client, provider)
        for page in pages:
            recorder.add(upsert_customers(provider=provider, remotes=page.items))
            renew()
        return 0

    return run
