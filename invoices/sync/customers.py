"""Customers of either provider: every page, each written as it comes."""

from __future__ import annotations

from invoices.models import Provider
from invoices.sync.mirror import upsert_customers
from invoices.sync.pages import RunRecorder


def customers(provider: str):
    def run(client, recorder: RunRecorder, renew) -> int:
        pages = client.iter_customers() if provider == Provider.MKP else client.iter_clients()
        for page in pages:
            recorder.add(upsert_customers(provider=provider, remotes=page.items))
            renew()
        return 0

    return run
