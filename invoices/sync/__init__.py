"""Pulls the providers into the local mirror. One run per provider at a time (a database lease
kept by a heartbeat), each run recorded as a SyncRun with its counts; a run that fails or stops is
resumed by the next one where it stopped.

MijnKlantportaal has no change filter and 15 invoices a page, so each run spends a fixed page
budget: the first page and the newest pages every run, then the next slice of a rolling full pass
that resumes where the previous run stopped. A completed pass marks what it did not see as removed.

Qonto is incremental: updated_at from the last successful cursor (minus an overlap) to now; a full
reconciliation now and then catches what the window missed and what was deleted.

The package: ``runs`` (one run of a provider, its lease and its SyncRun; the sweep of stopped
runs), ``walk`` (a list read page by page, pages tried again, the position kept), ``pages`` (pages
to the mirror in groups), one module per provider (``mkp``, ``qonto``) and ``customers``, ``removals``
(invoices a complete scan did not see), ``quarantine`` (records the mirror cannot hold), ``cursors``;
the upsert (``mirror``, ``pgmerge`` on
PostgreSQL, with ``writers``, ``prefetch`` and ``collector``), ``leases`` and ``refresh``.
"""

from invoices.sync.runs import MODE_CUSTOMERS, MODE_FULL, MODE_QUICK, MODES, RUNNERS, sync_provider

__all__ = ["MODES", "MODE_CUSTOMERS", "MODE_FULL", "MODE_QUICK", "RUNNERS", "sync_provider"]
