"""Fixtures for the sandbox tests: a fresh sandbox per test, over real HTTP on the loopback."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from integrations.sandbox import SandboxServer, make_invoice_pdf

MKP_AUTH = {"Authorization": "Bearer sandbox-mkp-key"}
QONTO_KEY_AUTH = {"Authorization": "sandbox-org:sandbox-secret"}
QONTO_TOKEN_AUTH = {"Authorization": "Bearer sandbox-qonto-token"}
TIMEOUT = 10


@pytest.fixture(autouse=True)
def _isolated_files():
    """The sandbox is plain Python: these tests need none of the project's Django settings."""


@pytest.fixture
def sandbox():
    with SandboxServer(data_seed=7) as server:
        yield server


def pdf(number: str = "2026-001", amount: str = "12.95", customer: str = "", **dates) -> bytes:
    return make_invoice_pdf(
        number=number,
        amount=Decimal(amount),
        issue_date=dates.get("issue_date", date(2026, 11, 1)),
        due_date=dates.get("due_date"),
        customer=customer,
    )
