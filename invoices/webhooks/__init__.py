"""Webhooks from the providers: hints that something changed, never the source of truth.

``models`` (the subscriptions we registered and every delivery received, stored raw), ``receiving``
(the endpoints: store, check the signature, answer, queue), ``processing`` (the task's work:
dedupe, then re-read the named invoice or customer from its provider) and ``registration``
(MijnKlantportaal's webhook records, created idempotently).
"""
