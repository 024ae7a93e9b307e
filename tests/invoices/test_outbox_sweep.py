"""The outbox sweep queues what is due again: Qonto creates five to a task (five files a request),
every other row in a task of its own; what waits for its retry time is left alone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from invoices import tasks
from invoices.models import PendingAction, Provider, SyncState
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


def test_the_sweep_queues_due_qonto_rows_five_to_a_task_and_the_others_one_by_one(queued):
    past = timezone.now() - timedelta(minutes=1)
    due = {"sync_state": SyncState.PENDING, "next_attempt_at": past}
    qonto = InvoiceFactory.create_batch(
        7, provider=Provider.QONTO, customer=None, remote_id=None, pending_action=PendingAction.CREATE, **due
    )
    mkp = InvoiceFactory.create_batch(2, pending_action=PendingAction.MARK_PAID, **due)
    InvoiceFactory(
        pending_action=PendingAction.MARK_PAID,
        sync_state=SyncState.PENDING,
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )
    InvoiceFactory(provider=Provider.QONTO, customer=None, pending_action="", **due)

    assert tasks.sweep_outbox() == 9

    qonto_ids = {i.pk for i in qonto}
    qonto_tasks = [ids for ids in queued if set(ids) <= qonto_ids]
    assert sorted(len(ids) for ids in qonto_tasks) == [2, 5]
    assert {pk for ids in qonto_tasks for pk in ids} == qonto_ids
    assert sorted(ids for ids in queued if ids not in qonto_tasks) == sorted([i.pk] for i in mkp)
