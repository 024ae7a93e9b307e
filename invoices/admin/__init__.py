"""The back-office admin. It collects input and calls services; it holds no business rules.

Every act has its permission, checked on the server (see ``base.GuardedAdmin``): the invoice admin
(``invoice`` with its list columns in ``columns`` and its extra pages in ``pages`` and
``corrections``), the filters, the CSV export, and the read-only admins of customers, bulk results
and sync runs (``records``), and the webhook deliveries and subscriptions (``webhooks``).
"""

from invoices.admin import invoice, records, webhooks  # noqa: F401 - registers the admins
