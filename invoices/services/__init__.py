"""What staff can ask for, one module per job. The admin collects input and calls these; a service
checks the input, records the intent on the invoice row (the outbox) with its history, and takes
one route: it sends now (a single action where staff wait for the provider's answer) or it queues
a task, never both. Each module's docstring says which route each of its services takes.

- ``intake``: new invoices from PDFs (drafts, creates, the Qonto import file by file)
- ``corrections``: correcting or discarding an upload that never reached its provider
- ``payment``: marking paid, one or many
- ``retry``: a failed change sent again, and the invoice page's "Send"
- ``refresh``: reading invoices and their PDF back from the provider, one now or many queued
- ``syncing``: a sync run queued by hand
- ``sending``: the two routes to the push (queue after commit, or send now with its ``Sent``)
- ``batches``: the bookkeeping of a bulk action (``ActionBatch``)
- ``dashboard_snapshot``: every figure of the dashboard, computed off the request path and stored
"""
