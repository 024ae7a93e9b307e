"""The roles staff are given: groups of permissions, kept in step with the code on every migrate.

A role only ever gains the permissions listed here; permissions an administrator added to a group
by hand are kept (``sync_roles(exact=True)`` sets the groups to exactly this list).
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

VIEWER = "Finance viewer"
CLERK = "Finance clerk"
ADMIN = "Back-office admin"

_SEE = [
    "invoices.view_invoice",
    "invoices.view_invoiceevent",
    "invoices.view_customer",
    "invoices.view_actionbatch",
    "invoices.view_syncrun",
    "invoices.view_syncproblem",
]
_ACT = [
    "invoices.create_at_provider",
    "invoices.mark_paid",
    "invoices.refresh_from_provider",
    "invoices.retry_push",
]

# "app_label.codename", or "app_label.*" for every permission of an app.
ROLES: dict[str, list[str]] = {
    VIEWER: [*_SEE, "invoices.export_invoices"],
    CLERK: [*_SEE, "invoices.export_invoices", *_ACT],
    ADMIN: ["invoices.*", "django_celery_beat.*"],
}

DESCRIPTIONS = {
    VIEWER: "sees invoices, customers, bulk results, sync runs and sync problems, opens PDFs, exports CSV",
    CLERK: "also uploads and sends invoices, marks them paid, refreshes from the provider, retries",
    ADMIN: (
        "everything of the back-office, including starting syncs, the Celery schedules, registering"
        " webhooks and processing webhook deliveries again"
    ),
}


def _permissions(names: list[str]) -> list[Permission]:
    query = Q(pk__in=[])
    for name in names:
        app_label, codename = name.split(".", 1)
        if codename == "*":
            query |= Q(content_type__app_label=app_label)
        else:
            query |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.filter(query))


def sync_roles(*, exact: bool = False) -> dict[str, int]:
    """Create the groups and give them their permissions. Returns the permission count per group."""
    counts = {}
    for name, wanted in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = _permissions(wanted)
        if exact:
            group.permissions.set(permissions)
        else:
            group.permissions.add(*permissions)
        counts[name] = group.permissions.count()
    return counts
