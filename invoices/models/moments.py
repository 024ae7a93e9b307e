"""How the models' names write a moment: as the admin does ("7 Dec 2026 16:22")."""

from __future__ import annotations

from datetime import datetime


def moment(value: datetime) -> str:
    """``invoices.formatting`` imports the models, so it is imported when first used."""
    from invoices import formatting

    return formatting.moment(value)
