"""The periodic tasks, declared here and written to django-celery-beat on every migrate.

Code owns which task runs with which arguments; staff own the timing and the on/off switch in the
admin, so a deploy never undoes their edits and never deletes a row (that would lose last_run_at).
"""

from __future__ import annotations

import json

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

MINUTES = IntervalSchedule.MINUTES

SCHEDULES = [
    # (name, task, args, every (minutes) or crontab dict)
    ("Push pending changes (sweep)", "invoices.tasks.sweep_outbox", [], 1),
    ("Sync runs: mark those whose worker stopped", "invoices.tasks.sweep_sync_runs", [], 1),
    ("MijnKlantportaal: sync invoices", "invoices.tasks.sync_provider", ["mkp", "quick"], 1),
    ("MijnKlantportaal: sync customers", "invoices.tasks.sync_provider", ["mkp", "customers"], 30),
    ("Qonto: sync changed invoices", "invoices.tasks.sync_provider", ["qonto", "quick"], 1),
    ("Qonto: sync clients", "invoices.tasks.sync_provider", ["qonto", "customers"], 30),
    ("Dashboard: recompute the figures", "invoices.tasks.refresh_dashboard_snapshot", [], 1),
    (
        "Qonto: full reconciliation",
        "invoices.tasks.sync_provider",
        ["qonto", "full"],
        {"hour": "3", "minute": "17"},
    ),
]


def register_schedules() -> list[str]:
    """Create missing periodic tasks and bring existing ones' task and arguments up to date."""
    names = []
    with transaction.atomic():
        for name, task, args, when in SCHEDULES:
            existing = PeriodicTask.objects.filter(name=name).first()
            if existing is None:
                timing = {}
                if isinstance(when, dict):
                    timing["crontab"], _ = CrontabSchedule.objects.get_or_create(
                        minute=when["minute"],
                        hour=when["hour"],
                        day_of_week="*",
                        day_of_month="*",
                        month_of_year="*",
                    )
                else:
                    timing["interval"], _ = IntervalSchedule.objects.get_or_create(every=when, period=MINUTES)
                PeriodicTask.objects.create(name=name, task=task, args=json.dumps(args), **timing)
            elif existing.task != task or json.loads(existing.args or "[]") != args:
                existing.task = task
                existing.args = json.dumps(args)
                existing.save(update_fields=["task", "args"])
            names.append(name)
    return names
