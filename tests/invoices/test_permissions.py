"""Who may do what: every URL and every action of the back-office admin, for every role.

The URLs and actions are discovered from the admins themselves, so a new page or action without
an entry below fails here until its permission is decided. Every refusal is checked to change
nothing: no row, no history, no batch, no stored file, nothing queued, no request to a provider.
"""

from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from invoices.models import (
    ActionBatch,
    ActionBatchItem,
    Customer,
    Invoice,
    InvoiceEvent,
    InvoiceStatus,
    Provider,
    SyncProblem,
    SyncRun,
    WebhookDelivery,
    WebhookSubscription,
)
from invoices.roles import ADMIN, CLERK, VIEWER
from invoices.services import intake
from invoices.sync import MODE_CUSTOMERS, MODE_FULL, sync_provider
from tests.invoices.helpers import pdf_bytes, seed

pytestmark = pytest.mark.django_db

NOBODY = None  # refused to every user (the act does not exist in the admin)
STAFF = "staff"  # any staff user: Django's redirect from /<id>/ to the page, which checks for itself
VIEW = "invoices.view_invoice"

# (what a GET needs, what a POST needs), per URL of the invoices admins.
URLS: dict[str, tuple[str | None, str | None]] = {
    "invoices_invoice_changelist": (VIEW, VIEW),
    "invoices_invoice_add": ("invoices.create_at_provider", "invoices.create_at_provider"),
    "invoices_invoice_change": (VIEW, NOBODY),
    "invoices_invoice_history": (VIEW, VIEW),
    "invoices_invoice_delete": (NOBODY, NOBODY),
    "invoices_invoice_redirect": (STAFF, STAFF),
    "invoices_invoice_mark_paid": ("invoices.mark_paid", "invoices.mark_paid"),
    "invoices_invoice_refresh": ("invoices.refresh_from_provider", "invoices.refresh_from_provider"),
    "invoices_invoice_send": ("invoices.create_at_provider", "invoices.create_at_provider"),
    "invoices_invoice_correct": ("invoices.create_at_provider", "invoices.create_at_provider"),
    "invoices_invoice_discard": ("invoices.create_at_provider", "invoices.create_at_provider"),
    "invoices_invoice_fetch_pdf": ("invoices.refresh_from_provider", "invoices.refresh_from_provider"),
    "invoices_invoice_pdf": (VIEW, VIEW),
    "invoices_syncrun_sync_now": ("invoices.run_sync", "invoices.run_sync"),
    "invoices_actionbatch_status": ("invoices.view_actionbatch", "invoices.view_actionbatch"),
    "invoices_webhooksubscription_register_mkp": ("invoices.manage_webhooks", "invoices.manage_webhooks"),
    "invoices_webhooksubscription_register_qonto": ("invoices.manage_webhooks", "invoices.manage_webhooks"),
    "invoices_webhooksubscription_refresh": ("invoices.manage_webhooks", "invoices.manage_webhooks"),
    "invoices_webhooksubscription_connect_qonto": ("invoices.connect_qonto", "invoices.connect_qonto"),
    "invoices_webhooksubscription_connect_qonto_done": (
        "invoices.connect_qonto",
        "invoices.connect_qonto",
    ),
}
for _model in ("customer", "actionbatch", "syncrun", "syncproblem", "webhookdelivery", "webhooksubscription"):
    _view = f"invoices.view_{_model}"
    URLS |= {
        f"invoices_{_model}_changelist": (_view, _view),
        f"invoices_{_model}_add": (NOBODY, NOBODY),
        f"invoices_{_model}_change": (_view, NOBODY),
        f"invoices_{_model}_history": (_view, _view),
        f"invoices_{_model}_delete": (NOBODY, NOBODY),
        f"invoices_{_model}_redirect": (STAFF, STAFF),
    }

# The pages of one model without an object in their address.
WITHOUT_ARGUMENTS = {
    "invoices_webhooksubscription_register_mkp",
    "invoices_webhooksubscription_register_qonto",
    "invoices_webhooksubscription_refresh",
    "invoices_webhooksubscription_connect_qonto",
    "invoices_webhooksubscription_connect_qonto_done",
}

# What each action of the invoice list needs.
ACTIONS = {
    "mark_paid_action": "invoices.mark_paid",
    "create_at_provider_action": "invoices.create_at_provider",
    "refresh_action": "invoices.refresh_from_provider",
    "retry_action": "invoices.retry_push",
    "export_csv_action": "invoices.export_invoices",
    "delete_selected": NOBODY,
}


def invoices_admins():
    return {m: a for m, a in admin.site._registry.items() if m._meta.app_label == "invoices"}


def discovered_urls() -> set[str]:
    """The names of every URL pattern of the invoices admins (the unnamed redirect gets one)."""
    return {
        pattern.name or f"invoices_{model._meta.model_name}_redirect"
        for model, model_admin in invoices_admins().items()
        for pattern in model_admin.get_urls()
    }


# The world the requests act on ------------------------------------------------------------------
class World:
    def __init__(self, sandbox, tmp_path: Path) -> None:
        self.sandbox = sandbox
        seed(sandbox, invoices=6, customers=2)
        assert sync_provider(provider=Provider.MKP, mode=MODE_CUSTOMERS).status == "succeeded"
        assert sync_provider(provider=Provider.MKP, mode=MODE_FULL).status == "succeeded"
        self.open = Invoice.objects.filter(provider=Provider.MKP, status=InvoiceStatus.OPEN).first()
        self.customer = Customer.objects.filter(provider=Provider.MKP).first()
        self.draft = intake.invoice_create_draft(
            provider=Provider.MKP,
            pdf_name="draft.pdf",
            pdf_content=pdf_bytes("2026-DRAFT"),
            actor=None,
            customer=self.customer,
            number="2026-DRAFT",
            issue_date=timezone.localdate(),
            amount=10,
        )
        self.batch = ActionBatch.objects.create(kind="mark_paid")
        self.run = SyncRun.objects.first()
        self.problem = SyncProblem.objects.create(
            provider=Provider.MKP, kind=SyncProblem.Kind.INVOICE, remote_id="inv_bad", message="unreadable"
        )
        self.subscription = WebhookSubscription.objects.create(
            provider=Provider.MKP,
            remote_id="wbh_1",
            event_types=["invoice-paid"],
            callback_url="https://bo.example.com/webhooks/mkp/",
            secret="a-secret-of-twenty-chars",
        )
        self.delivery = WebhookDelivery.objects.create(
            provider=Provider.MKP,
            body=b'{"data": {"id": "%s"}}' % self.open.remote_id.encode(),
            verified=True,
            subscription=self.subscription,
            event_type="invoice-paid",
            object_id=self.open.remote_id,
        )
        self.media = tmp_path / "media"

    def target(self, url_name: str):
        if url_name in ("invoices_invoice_send", "invoices_invoice_correct", "invoices_invoice_discard"):
            return self.draft
        return {
            "invoice": self.open,
            "customer": self.customer,
            "actionbatch": self.batch,
            "syncrun": self.run,
            "syncproblem": self.problem,
            "webhookdelivery": self.delivery,
            "webhooksubscription": self.subscription,
        }[url_name.split("_")[1]]

    def provider_requests(self) -> int:
        stats = requests.get(f"{self.sandbox.admin_url}/stats", timeout=10).json()
        return stats["requests"]["total"]

    def snapshot(self) -> dict:
        files = sorted(str(p) for p in self.media.rglob("*") if p.is_file()) if self.media.exists() else []
        return {
            "invoices": list(Invoice.objects.order_by("pk").values()),
            "events": InvoiceEvent.objects.count(),
            "batches": ActionBatch.objects.count(),
            "batch_items": ActionBatchItem.objects.count(),
            "runs": SyncRun.objects.count(),
            "webhook_subscriptions": list(WebhookSubscription.objects.order_by("pk").values()),
            "webhook_deliveries": list(WebhookDelivery.objects.order_by("pk").values()),
            "files": files,
            "provider_requests": self.provider_requests(),
        }


def post_data(url_name: str, world: World) -> dict:
    """A POST that would act if it were let through."""
    today = timezone.localtime() - timedelta(minutes=5)
    if url_name == "invoices_invoice_add":
        return {
            "pdf": SimpleUploadedFile("2026-NEW.pdf", pdf_bytes("2026-NEW"), "application/pdf"),
            "customer": world.customer.pk,
            "number": "2026-NEW",
            "issue_date": "2026-11-01",
            "amount": "12.95",
            "_send": "1",
        }
    if url_name == "invoices_invoice_correct":
        return {
            "customer": world.customer.pk,
            "number": "2026-FIXED",
            "issue_date": "2026-11-01",
            "amount": "12.95",
            "_save": "1",
        }
    if url_name == "invoices_invoice_mark_paid":
        return {"post": "yes", "paid_at_0": f"{today:%Y-%m-%d}", "paid_at_1": f"{today:%H:%M:%S}"}
    if url_name == "invoices_syncrun_sync_now":
        return {"provider": "mkp", "mode": "quick"}
    if url_name == "invoices_webhooksubscription_register_mkp":
        return {"url": "https://bo.example.com/webhooks/mkp/"}
    if url_name == "invoices_webhooksubscription_register_qonto":
        return {"url": "https://bo.example.com/webhooks/qonto/"}
    if url_name.endswith("_delete"):
        return {"post": "yes"}
    if url_name.endswith("_change"):
        return {"number": "CHANGED", "_save": "Save"}
    return {}


def action_data(name: str, world: World) -> dict:
    today = timezone.localtime() - timedelta(minutes=5)
    return {
        "action": name,
        helpers.ACTION_CHECKBOX_NAME: [world.open.pk, world.draft.pk],
        "index": "0",
        "post": "yes",
        "paid_at_0": f"{today:%Y-%m-%d}",
        "paid_at_1": f"{today:%H:%M:%S}",
    }


# The people -------------------------------------------------------------------------------------
def staff_with(django_user_model, username: str, *, group: str | None = None, perms: tuple = ()):
    user = django_user_model.objects.create_user(username=username, password="x", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return django_user_model.objects.get(pk=user.pk)  # a fresh permission cache


@pytest.fixture
def people(django_user_model):
    return {
        "view-only": staff_with(django_user_model, "vera", perms=(VIEW,)),
        "viewer": staff_with(django_user_model, "victor", group=VIEWER),
        "clerk": staff_with(django_user_model, "clara", group=CLERK),
        "admin": staff_with(django_user_model, "adam", group=ADMIN),
    }


@pytest.fixture
def queued_tasks(monkeypatch):
    """Every task handed to the broker, instead of a broker."""
    from invoices import tasks

    calls = []
    for task in (
        tasks.push_invoices,
        tasks.refresh_batch,
        tasks.sync_provider,
        tasks.process_webhook_delivery,
    ):
        monkeypatch.setattr(task, "delay", lambda *a, _t=task.name, **k: calls.append((_t, a)))
    return calls


@pytest.fixture
def world(sandbox, tmp_path):
    return World(sandbox, tmp_path)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


# The tests --------------------------------------------------------------------------------------
def test_every_url_of_the_admin_has_its_permission_decided():
    assert sorted(discovered_urls()) == sorted(URLS)


def test_every_action_declares_the_permissions_it_needs():
    for model, model_admin in invoices_admins().items():
        for func, name, _ in model_admin._get_base_actions():
            assert getattr(func, "allowed_permissions", None), f"{model.__name__}.{name} declares none"
            for permission in func.allowed_permissions:
                assert callable(getattr(model_admin, f"has_{permission}_permission", None)), name
    names = [name for _, name, _ in admin.site._registry[Invoice]._get_base_actions()]
    assert sorted(names) == sorted(ACTIONS)


@pytest.mark.parametrize("who", ["anonymous", "view-only", "viewer", "clerk", "admin"])
def test_every_url_allows_exactly_the_users_with_its_permission(
    who, people, world, queued_tasks, django_capture_on_commit_callbacks
):
    user = people.get(who)
    client = client_for(user)
    checked = 0
    for name in sorted(discovered_urls()):
        args = (
            []
            if name.endswith(("_changelist", "_add", "_sync_now")) or name in WITHOUT_ARGUMENTS
            else [world.target(name).pk]
        )
        if name.endswith("_redirect"):
            url = reverse(f"admin:{name.replace('_redirect', '_change')}", args=args).removesuffix("change/")
        else:
            url = reverse(f"admin:{name}", args=args)
        for method, needs in zip(("get", "post"), URLS[name], strict=True):
            allowed = user is not None and needs is not NOBODY and (needs == STAFF or user.has_perm(needs))
            before = world.snapshot()
            tasks_before = len(queued_tasks)
            data = post_data(name, world) if method == "post" else {}
            with django_capture_on_commit_callbacks(execute=True):
                response = getattr(client, method)(url, data)
            where = f"{who} {method.upper()} {url}"
            if allowed:
                assert response.status_code in (200, 302), f"{where}: {response.status_code}"
                if user is not None and response.status_code == 302:
                    assert "/login/" not in response["Location"], where
                continue
            if user is None:
                assert response.status_code == 302, where
                assert response["Location"].startswith(reverse("admin:login")), where
            else:
                assert response.status_code == 403, f"{where}: {response.status_code}"
            assert world.snapshot() == before, f"{where} changed something"
            assert len(queued_tasks) == tasks_before, f"{where} queued a task"
            checked += 1
    assert checked > 0 or who == "admin"


@pytest.mark.parametrize("who", ["view-only", "viewer", "clerk", "admin"])
def test_every_action_allows_exactly_the_users_with_its_permission(
    who, people, world, queued_tasks, django_capture_on_commit_callbacks
):
    user = people[who]
    client = client_for(user)
    changelist = reverse("admin:invoices_invoice_changelist")
    menu = client.get(changelist).content.decode()
    for name, needs in ACTIONS.items():
        allowed = needs is not NOBODY and user.has_perm(needs)
        assert (f'value="{name}"' in menu) == allowed, f"{who}: {name} in the action menu"
        before = world.snapshot()
        tasks_before = len(queued_tasks)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(changelist, action_data(name, world))
        if allowed:
            assert response.status_code in (200, 302), f"{who} {name}: {response.status_code}"
            continue
        assert response.status_code == 403, f"{who} {name}: {response.status_code}"
        assert world.snapshot() == before, f"{who} {name} changed something"
        assert len(queued_tasks) == tasks_before, f"{who} {name} queued a task"


@pytest.mark.parametrize("who", ["view-only", "viewer", "clerk", "admin"])
def test_processing_a_webhook_delivery_again_is_for_admins(
    who, people, world, queued_tasks, django_capture_on_commit_callbacks
):
    user = people[who]
    client = client_for(user)
    changelist = reverse("admin:invoices_webhookdelivery_changelist")
    allowed = user.has_perm("invoices.process_webhook_again")
    assert allowed == (who == "admin")
    if allowed:
        assert 'value="process_again_action"' in client.get(changelist).content.decode()
    before = world.snapshot()
    data = {"action": "process_again_action", helpers.ACTION_CHECKBOX_NAME: [world.delivery.pk], "index": "0"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(changelist, data)
    if allowed:
        assert response.status_code == 302
        assert queued_tasks == [("invoices.tasks.process_webhook_delivery", (world.delivery.pk,))]
        return
    assert response.status_code == 403
    assert world.snapshot() == before and queued_tasks == []


def test_the_register_button_shows_only_to_those_who_may_manage_webhooks(people, world):
    url = reverse("admin:invoices_webhooksubscription_changelist")
    for who, user in people.items():
        response = client_for(user).get(url)
        if not user.has_perm("invoices.view_webhooksubscription"):
            assert response.status_code == 403, who
            continue
        page = response.content.decode()
        assert ("register-mkp-link" in page) == user.has_perm("invoices.manage_webhooks"), who
        assert world.subscription.secret not in page and "••••••••hars" in page, who
        change = reverse("admin:invoices_webhooksubscription_change", args=[world.subscription.pk])
        page = client_for(user).get(change).content.decode()
        assert world.subscription.secret not in page and "••••••••hars" in page, who


def test_sending_a_failed_change_again_needs_the_retry_permission(
    django_user_model, world, queued_tasks, django_capture_on_commit_callbacks
):
    Invoice.objects.filter(pk=world.draft.pk).update(sync_state="failed", last_error="Refused.")
    url = reverse("admin:invoices_invoice_send", args=[world.draft.pk])
    creator = staff_with(django_user_model, "cora", perms=(VIEW, "invoices.create_at_provider"))
    retrier = staff_with(django_user_model, "rita", perms=(VIEW, "invoices.retry_push"))
    before = world.snapshot()
    assert client_for(creator).post(url).status_code == 403
    assert world.snapshot() == before
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(retrier).post(url).status_code == 302
    assert Invoice.objects.get(pk=world.draft.pk).sync_state != "failed"


def test_the_invoice_page_shows_only_the_controls_the_user_may_use(people, world):
    url = reverse("admin:invoices_invoice_change", args=[world.open.pk])
    controls = {
        "mark-paid-link": "invoices.mark_paid",
        'form="refresh-form"': "invoices.refresh_from_provider",
        'form="fetch-pdf-form"': "invoices.refresh_from_provider",
        "open-pdf-link": VIEW,
    }
    for who, user in people.items():
        page = client_for(user).get(url).content.decode()
        for marker, needs in controls.items():
            assert (marker in page) == user.has_perm(needs), f"{who}: {marker}"
        assert 'name="_save"' not in page, who


def test_the_celery_schedules_are_for_admins_only(people):
    url = reverse("admin:django_celery_beat_periodictask_changelist")
    for who, user in people.items():
        client = client_for(user)
        index = client.get(reverse("admin:index")).content.decode()
        allowed = who == "admin"
        assert ("Periodic tasks" in index) == allowed, who
        assert client.get(url).status_code == (200 if allowed else 403), who


def test_roles_are_kept_in_step_and_keep_what_an_administrator_added():
    from django.core.management import call_command

    clerk = Group.objects.get(name=CLERK)
    assert {p.codename for p in clerk.permissions.all()} >= {
        "view_invoice",
        "create_at_provider",
        "mark_paid",
        "refresh_from_provider",
        "retry_push",
        "export_invoices",
    }
    assert not clerk.permissions.filter(codename="run_sync").exists()
    viewer = Group.objects.get(name=VIEWER)
    assert not viewer.permissions.filter(codename__in=["mark_paid", "create_at_provider"]).exists()
    extra = Permission.objects.get(codename="run_sync")
    viewer.permissions.add(extra)
    call_command("setup_roles")
    assert viewer.permissions.filter(pk=extra.pk).exists()
    call_command("setup_roles", "--exact")
    assert not viewer.permissions.filter(pk=extra.pk).exists()
    admin_group = Group.objects.get(name=ADMIN)
    assert admin_group.permissions.filter(content_type__app_label="django_celery_beat").exists()
    assert admin_group.permissions.filter(codename="run_sync").exists()
