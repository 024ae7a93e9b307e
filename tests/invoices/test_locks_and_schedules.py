import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from invoices.schedules import SCHEDULES, register_schedules
from invoices.sync import leases as locks

pytestmark = pytest.mark.django_db


def test_a_lease_has_one_holder_until_released():
    assert locks.acquire("sync:mkp", holder="a", ttl=timedelta(minutes=1))
    assert not locks.acquire("sync:mkp", holder="b", ttl=timedelta(minutes=1))
    assert locks.acquire("sync:mkp", holder="a", ttl=timedelta(minutes=1)), "the holder may renew"
    locks.release("sync:mkp", holder="a")
    assert locks.acquire("sync:mkp", holder="b", ttl=timedelta(minutes=1))


def test_an_expired_lease_can_be_taken_over():
    assert locks.acquire("sync:qonto", holder="dead", ttl=timedelta(seconds=-1))
    assert locks.acquire("sync:qonto", holder="alive", ttl=timedelta(minutes=1))


def test_the_context_manager_yields_none_when_taken():
    with (
        locks.lease("x", ttl=timedelta(minutes=1)) as first,
        locks.lease("x", ttl=timedelta(minutes=1)) as second,
    ):
        assert first is not None
        assert second is None


def test_schedules_are_registered_once_and_staff_edits_survive(capsys):
    # migrate already registered them
    assert PeriodicTask.objects.filter(name__in=[s[0] for s in SCHEDULES]).count() == len(SCHEDULES)
    task = PeriodicTask.objects.get(name="MijnKlantportaal: sync invoices")
    task.interval = IntervalSchedule.objects.create(every=7, period=IntervalSchedule.MINUTES)
    task.enabled = False
    task.save()
    pk = task.pk
    call_command("register_schedules")
    register_schedules()
    task = PeriodicTask.objects.get(name="MijnKlantportaal: sync invoices")
    assert task.pk == pk, "never deleted and recreated"
    assert task.interval.every == 7
    assert task.enabled is False
    assert json.loads(task.args) == ["mkp", "quick"]
    assert "registered: MijnKlantportaal: sync invoices" in capsys.readouterr().out


def test_the_dashboard_figures_are_recomputed_every_minute():
    from config.celery import app

    task = PeriodicTask.objects.get(name="Dashboard: recompute the figures")
    assert task.task == "invoices.tasks.refresh_dashboard_snapshot" and json.loads(task.args) == []
    assert (task.interval.every, task.interval.period) == (1, IntervalSchedule.MINUTES)
    assert task.enabled
    assert task.task in app.tasks
