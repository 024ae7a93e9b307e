"""Shared steps of the admin and service tests: seed the sandbox, mirror it, make PDFs."""

from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import requests
from django.db import connection

from integrations.sandbox.pdf import make_invoice_pdf
from invoices.models import Customer, Provider
from invoices.sync import MODE_CUSTOMERS, sync_provider


def seed(sandbox, *, invoices: int = 0, customers: int = 3) -> None:
    requests.post(
        f"{sandbox.admin_url}/seed",
        json={"invoices": invoices, "customers": customers, "seed": 7},
        timeout=30,
    ).raise_for_status()


def mirrored_mkp_customer(sandbox) -> Customer:
    seed(sandbox, customers=2)
    sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS)
    return Customer.objects.filter(provider=Provider.MKP).order_by("pk").first()


def remote_state(sandbox, provider: str) -> list[dict]:
    response = requests.get(f"{sandbox.admin_url}/state", params={"provider": provider}, timeout=30)
    response.raise_for_status()
    return response.json()["invoices"]


def set_faults(sandbox, probabilities: dict, **extra) -> None:
    requests.post(
        f"{sandbox.admin_url}/faults", json={"probabilities": probabilities, **extra}, timeout=10
    ).raise_for_status()


def set_config(sandbox, **config) -> None:
    requests.post(f"{sandbox.admin_url}/config", json=config, timeout=10).raise_for_status()


def pdf_bytes(number: str = "2026-100", amount: str = "12.95", issued: date = date(2026, 11, 1)) -> bytes:
    return make_invoice_pdf(number=number, amount=Decimal(amount), issue_date=issued, customer="Klant BV")


@contextmanager
def invoice_writes():
    """The invoice rows inserted or updated while it is open (sum the list after the block)."""
    written: list[int] = []
    if connection.vendor == "postgresql":
        # The transaction's own table statistics count every row a statement wrote.
        stats = (
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_xact_user_tables"
            " WHERE relname = 'invoices_invoice'"
        )
        with connection.cursor() as cursor:
            cursor.execute(stats)
            before = cursor.fetchone()[0]
        yield written
        with connection.cursor() as cursor:
            cursor.execute(stats)
            written.append(cursor.fetchone()[0] - before)
        return

    def count(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if (
            sql.startswith(("UPDATE", "INSERT"))
            and '"invoices_invoice"' in sql.split(" SET")[0].split("(")[0]
        ):
            written.append(max(context["cursor"].rowcount, 0))
        return result

    with connection.execute_wrapper(count):
        yield written
