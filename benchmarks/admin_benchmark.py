#!/usr/bin/env python3
"""How fast the invoice list answers at 1,000, 100,000 and 1,000,000 invoices on PostgreSQL.

    .venv/bin/python benchmarks/admin_benchmark.py [--sizes 1000,100000] [--runs 7]

For each size N it fills the invoice table with N invoices dated as a mature business's are (one
customer per 50 invoices, half per provider, issued over three years in the order of their ids, as
the sync inserts them; due after 14, 30 or 60 days; paid between the issue date and 44 days past
the due date; open: 70 % of those not yet due, 15 % of those due in the last 90 days, 4 % of older
ones, about 7 % in all; 1 % canceled; 2 % removed at the provider) with one
``INSERT ... SELECT FROM generate_series`` per table, runs ``VACUUM ANALYZE``, and then asks the
admin, through Django's test client as a logged-in superuser (templates rendered, as in a browser):

- list: the first page of the invoice list (100 rows, newest first);
- overdue, provider: the list filtered by ``overdue=yes``, by ``provider__exact=qonto``;
- due range, paid range: the list filtered by due dates, by payment dates, of the last 120 days;
- number: a search for one invoice number; customer: a search for part of a customer's name;
- dashboard: the admin's index page (``/admin/``), the receivables dashboard, as staff get it in
  production: with the snapshot of its figures fresh (recomputed just before, as the task does
  every minute and after every change; the time that recomputation takes is printed too: it runs
  off the request path).

Every page is asked once to warm up and then ``--runs`` times; the median is reported, with the
queries the page made, the rows it showed and the ratio of its median to the median at the
smallest size; for a list, also the milliseconds per row shown and the ratio of those (a page that
shows fewer rows at the smallest size, as the overdue list does, is then compared row for row). The searches find the same rows at every size (one invoice; the 50 invoices of one
customer).

It works in a scratch database (``backoffice_admin_bench``) that it creates, migrates and drops,
on the server given by ``--server`` (default: PostgreSQL on 127.0.0.1:5432 as ``postgres``).
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import scratch_database

PAGES = {
    "list": {},
    "overdue": {"overdue": "yes"},
    "provider": {"provider__exact": "qonto"},
    "due range": "due-range",
    "paid range": "paid-range",
    "number": {"q": "MKP-0000500"},
    "customer": "customer",
    "dashboard": "index",
}

# The date ranges cover the last 120 days: a full page (100 rows) at every size, so the ratio
# measures the table's growth rather than a shorter page at 1,000 (30 days hold 28 invoices there).
RANGE_DAYS = 120

FILL_CUSTOMERS = """
INSERT INTO invoices_customer (provider, remote_id, name, email, raw)
SELECT CASE WHEN c %% 2 = 0 THEN 'mkp' ELSE 'qonto' END, 'cst_' || c,
       'Klant ' || substr(md5(c::text), 1, 8) || ' BV', 'klant' || c || '@example.nl', '{}'::jsonb
FROM generate_series(1, %(customers)s) AS c
"""

# Invoice i: provider by parity, customer i mod C (50 invoices each), issued over 1,096 days in the
# order of the ids (the sync inserts them as they are made: invoice N is issued today), due after
# 14, 30 or 60 days, paid between its issue date and 44 days after its due date (at the
# latest yesterday). Open: 70 % of the
# invoices not yet due, 15 % of those due in the last 90 days, 4 % of older ones; 1 % canceled.
FILL_INVOICES = """
INSERT INTO invoices_invoice (
    provider, remote_id, number, customer_id, customer_remote_id, customer_name, issue_date, due_date,
    amount, vat_amount, currency, status, paid_at, payment_link, attachment_id, removed_at, raw, pdf,
    pdf_name, pdf_sha256, send_notification, sync_state, pending_action, outcome_unknown, attempts,
    last_error, created_at, updated_at, last_seen_at
)
SELECT
    p.provider, 'inv_' || i, upper(p.provider) || '-' || lpad(i::text, 7, '0'), c.id, c.remote_id,
    CASE WHEN p.provider = 'qonto' THEN c.name ELSE '' END, d.issued, d.due,
    (i %% 100000) / 10.0 + 10, NULL, 'EUR', s.status,
    CASE WHEN s.status = 'paid' THEN
        (GREATEST(d.issued, LEAST(d.issued + (i * 13) %% (d.due - d.issued + 45), current_date - 1))
         + make_interval(hours => 8 + i %% 10))::timestamp AT TIME ZONE 'Europe/Paris'
    END,
    'https://pay.example.com/' || i, '', CASE WHEN i %% 50 = 7 THEN now() END, '{}'::jsonb, '', '', '',
    false, 'synced', '', false, 0, '', now(), now(), now()
FROM generate_series(1, %(invoices)s) AS i
CROSS JOIN LATERAL (SELECT CASE WHEN i %% 2 = 0 THEN 'mkp' ELSE 'qonto' END AS provider) AS p
CROSS JOIN LATERAL (
    SELECT current_date - ((%(invoices)s - i)::bigint * 1096 / %(invoices)s)::int AS issued,
           (ARRAY[14, 30, 30, 60])[1 + i %% 4] AS terms
) AS t
CROSS JOIN LATERAL (SELECT t.issued, t.issued + t.terms AS due) AS d
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN i %% 100 = 98 THEN 'canceled'
        WHEN d.due >= current_date AND i %% 10 < 7 THEN 'open'
        WHEN d.due >= current_date - 90 AND d.due < current_date AND i %% 100 < 15 THEN 'open'
        WHEN d.due < current_date - 90 AND i %% 100 < 4 THEN 'open'
        ELSE 'paid'
    END AS status
) AS s
JOIN invoices_customer AS c ON c.remote_id = 'cst_' || (1 + i %% %(customers)s)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="invoice counts, comma-separated")
    parser.add_argument("--runs", type=int, default=7, help="measured runs per page (the median is shown)")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--database", default="backoffice_admin_bench", help="scratch database (dropped first)"
    )
    return parser.parse_args()


def fill(invoices: int) -> tuple[str, float]:
    """An invoice table of ``invoices`` rows and its customers; the name searched for, the share of
    open invoices and the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    customers = max(invoices // 50, 20)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE invoices_invoiceevent, invoices_invoice, invoices_customer RESTART IDENTITY CASCADE"
        )
        cursor.execute(FILL_CUSTOMERS, {"customers": customers})
        cursor.execute(FILL_INVOICES, {"invoices": invoices, "customers": customers})
        cursor.execute("VACUUM ANALYZE invoices_invoice")
        cursor.execute("VACUUM ANALYZE invoices_customer")
        cursor.execute("SELECT substr(name, 7, 8) FROM invoices_customer WHERE remote_id = 'cst_8'")
        name = cursor.fetchone()[0]
        cursor.execute("SELECT avg((status = 'open')::int) FROM invoices_invoice")
        open_share = float(cursor.fetchone()[0])
    return name, open_share, time.perf_counter() - started


def snapshot() -> float:
    """The dashboard's figures computed as the periodic task does; the milliseconds it took."""
    from invoices.tasks import refresh_dashboard_snapshot

    started = time.perf_counter()
    refresh_dashboard_snapshot()
    return (time.perf_counter() - started) * 1000


def measure(client, url: str, params: dict, runs: int) -> tuple[float, int, int, list[float]]:
    """Median milliseconds, queries, rows shown, and the milliseconds of each query of the last run."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url, params)  # warm-up
    assert response.status_code == 200, (url, params, response.status_code)
    rows = len(response.context["cl"].result_list) if "cl" in (response.context or {}) else 0
    timings = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, params)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(timings), len(captured), rows, [float(q["time"]) * 1000 for q in captured]


def run(sizes: list[int], runs: int) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils import timezone

    setup_test_environment()
    user = get_user_model().objects.create_superuser("bench", "bench@example.nl", "x")
    client = Client()
    client.force_login(user)
    changelist = reverse("admin:invoices_invoice_changelist")
    today = timezone.localdate()
    results: dict[int, dict[str, tuple[float, int, int]]] = {}
    for size in sizes:
        name, open_share, took = fill(size)
        print(f"\n{size:,} invoices, {open_share:.1%} open (filled and analysed in {took:.0f} s)")
        print(
            f"  {'page':<10} {'median ms':>10} {'queries':>8} {'rows':>5} {'x smallest':>11}"
            f" {'ms a row':>9} {'x smallest':>11}"
        )
        results[size] = {}
        for page, params in PAGES.items():
            url = changelist
            if params == "index":
                url, params = reverse("admin:index"), {}
                print(f"  the dashboard's figures recomputed in {snapshot():.0f} ms (off the request path)")
            elif params == "customer":
                params = {"q": name}
            elif params == "due-range":
                params = {
                    "due_date__gte": str(today - timedelta(days=RANGE_DAYS)),
                    "due_date__lte": str(today),
                }
            elif params == "paid-range":
                params = {"paid_at__gte": str(today - timedelta(days=RANGE_DAYS)), "paid_at__lte": str(today)}
            median, queries, rows, sql = measure(client, url, params, runs)
            results[size][page] = median, queries, rows
            base, _, base_rows = results[sizes[0]][page]
            line = f"  {page:<10} {median:>10.1f} {queries:>8} {rows:>5} {median / base:>10.2f}x"
            if rows and base_rows:  # a list: per row shown, so that pages of unequal length compare
                per_row = median / rows
                line += f" {per_row:>9.2f} {per_row / (base / base_rows):>10.2f}x"
            print(line)
            if page == "dashboard":
                print(f"  {'':<10} its queries (ms, in order): {' '.join(f'{ms:.1f}' for ms in sql)}")


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with scratch_database(args.server, args.database):
        run(sizes, args.runs)


if __name__ == "__main__":
    main()
