"""The ``invoices`` app's models, one module per idea; every public name is importable from here.

``mirror`` (the providers' customers and invoices, with our bookkeeping on each invoice, and which
fields a pull writes), ``history`` (what happened to an invoice), ``sync`` (sync runs, the records
kept aside, where a scan stands), ``workers`` (leases and rotating provider tokens), ``batches``
(the bulk actions staff started), ``totals`` (the dashboard chart's monthly snapshot), and the
webhook models of ``invoices.webhooks.models``, imported here so that they belong to this app.
"""

from invoices.models.batches import ActionBatch, ActionBatchItem
from invoices.models.history import InvoiceEvent
from invoices.models.mirror import (
    MIRRORED_FIELDS,
    Customer,
    Invoice,
    InvoiceStatus,
    PendingAction,
    Provider,
    SyncState,
    invoice_pdf_path,
)
from invoices.models.sync import SyncCursor, SyncProblem, SyncRun
from invoices.models.totals import DashboardSnapshot
from invoices.models.workers import Lease, ProviderToken
from invoices.webhooks.models import WebhookDelivery, WebhookSubscription

__all__ = [
    "MIRRORED_FIELDS",
    "ActionBatch",
    "ActionBatchItem",
    "Customer",
    "DashboardSnapshot",
    "Invoice",
    "InvoiceEvent",
    "InvoiceStatus",
    "Lease",
    "PendingAction",
    "Provider",
    "ProviderToken",
    "SyncCursor",
    "SyncProblem",
    "SyncRun",
    "SyncState",
    "WebhookDelivery",
    "WebhookSubscription",
    "invoice_pdf_path",  # named by migration 0001
]
