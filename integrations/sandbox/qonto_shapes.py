"""What the sandboxed Qonto answers look like: JSON:API errors with their trace id, the staging
login page, and the client invoice and client objects."""

from __future__ import annotations

import uuid
from decimal import Decimal

from integrations.sandbox import times
from integrations.sandbox.store import QontoClient, QontoInvoice
from integrations.sandbox.web import Response, json_response

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Qonto - Sign in</title></head>
<body><main><h1>Sign in</h1>
<p>This is a Qonto staging environment. Please sign in to continue.</p>
<form method="post" action="https://qonto.onelogin.com/login">
<label>Email <input type="email" name="email"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Continue</button></form></main></body></html>
"""


def errors_response(
    status: int, code: str, detail: str, source: dict | None = None, headers: dict[str, str] | None = None
) -> Response:
    trace_id = uuid.uuid4().hex
    entry: dict = {"code": code, "detail": detail}
    if source:
        entry["source"] = source
    return json_response(
        status, {"errors": [entry], "trace_id": trace_id}, {**(headers or {}), "X-Tyk-Trace-Id": trace_id}
    )


def server_error_response() -> Response:
    return errors_response(
        500, "internal_server_error", "An unexpected error occurred. Please try again later."
    )


def too_many_response(retry_after: int) -> Response:
    return errors_response(
        429,
        "too_many_requests",
        "Too many requests, please retry later.",
        headers={"Retry-After": str(retry_after)},
    )


def money(value: Decimal) -> dict:
    return {"value": str(value), "currency": "EUR"}


def cents(value: Decimal) -> int:
    return int(value * 100)


def not_found(kind: str, object_id: str) -> Response:
    return errors_response(404, "not_found", f"No {kind} found with id {object_id}.", {"parameter": "id"})


def client_json(client: QontoClient, *, full: bool = False) -> dict:
    body = {
        "id": client.id,
        "name": client.name,
        "first_name": client.first_name,
        "last_name": client.last_name,
        "type": client.kind,
        "email": client.email,
        "vat_number": client.vat_number,
        "tax_identification_number": client.tax_identification_number,
        "address": client.address,
        "city": client.city,
        "zip_code": client.zip_code,
        "province_code": None,
        "country_code": client.country_code.lower(),
        "recipient_code": None,
        "locale": client.locale,
        "billing_address": {
            "street_address": client.address,
            "city": client.city,
            "zip_code": client.zip_code,
            "province_code": None,
            "country_code": client.country_code,
        },
        "delivery_address": None,
    }
    if full:
        body.update(
            kind=client.kind,
            currency="EUR",
            extra_emails=[],
            phone=None,
            e_invoicing_address=None,
            created_at=times.paris_iso(client.created_at),
            updated_at=times.paris_iso(client.updated_at, milliseconds=True),
        )
    return body


def invoice_json(
    invoice: QontoInvoice, client: QontoClient | None, *, organization_id: str, base_url: str
) -> dict:
    """The client invoice as the provider's example shows it (fields we have no data for are null)."""
    subtotal = invoice.total - invoice.vat
    items = []
    if not invoice.imported:
        items.append(
            {
                "title": invoice.item_title,
                "description": None,
                "quantity": "1",
                "unit": "unit",
                "unit_price": money(subtotal),
                "unit_price_cents": cents(subtotal),
                "vat_rate": "0.2" if invoice.vat else "0",
                "vat_exemption_reason": None,
                "discount": None,
                "total_vat": money(invoice.vat),
                "total_vat_cents": cents(invoice.vat),
                "total_amount": money(invoice.total),
                "total_amount_cents": cents(invoice.total),
                "subtotal": money(subtotal),
                "subtotal_cents": cents(subtotal),
            }
        )
    return {
        "id": invoice.id,
        "organization_id": organization_id,
        "number": invoice.number,
        "purchase_order": None,
        "status": invoice.status,
        "invoice_url": f"{base_url}/public/qonto/invoices/{invoice.id}",
        "contact_email": client.email if client else None,
        "terms_and_conditions": None,
        "header": None,
        "footer": None,
        "currency": "EUR",
        "total_amount": money(invoice.total),
        "total_amount_cents": cents(invoice.total),
        "vat_amount": money(invoice.vat),
        "vat_amount_cents": cents(invoice.vat),
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "performance_start_date": None,
        "performance_end_date": None,
        "created_at": times.paris_iso(invoice.created_at),
        "updated_at": times.paris_iso(invoice.updated_at, milliseconds=True),
        "finalized_at": times.paris_iso(invoice.finalized_at),
        "paid_at": times.paris_iso(invoice.paid_at),
        "items": items,
        "client": client_json(client) if client else None,
        "payment_methods": [
            {
                "beneficiary_name": "Sandbox SAS",
                "bic": "QNTOFRP1XXX",
                "iban": "FR7616958000010000000000042",
                "type": "transfer",
            }
        ],
        "credit_notes_ids": [],
        "invoice_type": "standard",
        "attachment_id": invoice.attachment_id,
        "discount": None,
        "einvoicing_status": None,
    }
