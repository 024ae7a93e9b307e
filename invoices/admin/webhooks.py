"""The webhook admins: the deliveries received (read-only, processed again by admins) and the
subscriptions held at the providers (secrets masked), with Connect Qonto, registering each
provider's webhooks, refreshing them from the providers and deleting them there."""

from __future__ import annotations

import contextlib
import json

import orjson
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from invoices.admin.filters import YesNoFilter
from invoices.admin.records import ReadOnlyAdmin
from invoices.models import Provider, WebhookDelivery, WebhookSubscription
from invoices.services.qonto_connect import qonto_connect_finish, qonto_connect_start
from invoices.webhooks.processing import webhook_deliveries_process_again
from invoices.webhooks.registration import (
    ENDPOINTS,
    default_url,
    webhooks_delete,
    webhooks_refresh,
    webhooks_register,
)


class ProcessedFilter(YesNoFilter):
    title = "processed"
    parameter_name = "processed"

    def condition(self) -> Q:
        return Q(processed_at__isnull=False)


class FailedFilter(YesNoFilter):
    title = "failed"
    parameter_name = "failed"

    def condition(self) -> Q:
        return ~Q(error="")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "provider",
        "event_type",
        "object_id",
        "verified",
        "processed_at",
        "outcome",
        "error",
    )
    list_filter = ("provider", "verified", ProcessedFilter, FailedFilter)
    search_fields = ("event_id", "object_id")
    date_hierarchy = "received_at"
    actions = ["process_again_action"]
    fields = (
        "provider",
        "received_at",
        "verified",
        "subscription",
        "event_id",
        "event_type",
        "object_id",
        "duplicate_of",
        "processed_at",
        "attempts",
        "outcome",
        "error",
        "request_headers",
        "request_body",
    )
    readonly_fields = ("request_headers", "request_body")

    def has_process_again_permission(self, request) -> bool:
        return self.has_codename(request, "process_webhook_again")

    @admin.display(description="headers")
    def request_headers(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, indent=2, sort_keys=True))

    @admin.display(description="body as received")
    def request_body(self, obj: WebhookDelivery) -> str:
        text = bytes(obj.body).decode("utf-8", errors="replace")
        with contextlib.suppress(orjson.JSONDecodeError):  # orjson also refuses a too deep nesting
            text = orjson.dumps(
                orjson.loads(obj.body), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            ).decode()
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Process again", permissions=["process_again"])
    def process_again_action(self, request, queryset):
        queued, skipped = webhook_deliveries_process_again(
            delivery_ids=list(queryset.values_list("pk", flat=True))
        )
        self.message_user(
            request,
            ngettext(
                "%(n)d delivery is queued to be processed again.",
                "%(n)d deliveries are queued to be processed again.",
                queued,
            )
            % {"n": queued},
            messages.SUCCESS if queued else messages.WARNING,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(n)d delivery was skipped: its signature did not verify, so it is never processed.",
                    "%(n)d deliveries were skipped: their signatures did not verify, so they are never processed.",
                    skipped,
                )
                % {"n": skipped},
                messages.WARNING,
            )


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("provider", "remote_id", "types", "callback_url", "masked_secret", "updated_at")
    list_filter = ("provider",)
    fields = (
        "provider",
        "remote_id",
        "event_types",
        "callback_url",
        "masked_secret",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("masked_secret",)
    actions = ["delete_at_provider_action"]
    change_list_template = "admin/invoices/webhooksubscription/change_list.html"

    def has_manage_webhooks_permission(self, request) -> bool:
        return self.has_codename(request, "manage_webhooks")

    def has_connect_qonto_permission(self, request) -> bool:
        return self.has_codename(request, "connect_qonto")

    @admin.display(description="event types")
    def types(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.event_types)

    @admin.display(description="secret")
    def masked_secret(self, obj: WebhookSubscription) -> str:
        return obj.masked_secret

    def get_urls(self):
        name = "invoices_webhooksubscription"
        return [
            path(
                "register-mkp/",
                self.guarded_view(self.register_view),
                {"provider": Provider.MKP},
                name=f"{name}_register_mkp",
            ),
            path(
                "register-qonto/",
                self.guarded_view(self.register_view),
                {"provider": Provider.QONTO},
                name=f"{name}_register_qonto",
            ),
            path("refresh/", self.guarded_view(self.refresh_view), name=f"{name}_refresh"),
            path("connect-qonto/", self.guarded_view(self.connect_qonto_view), name=f"{name}_connect_qonto"),
            path(
                "connect-qonto/done/",
                self.guarded_view(self.connect_qonto_done_view),
                name=f"{name}_connect_qonto_done",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "may_manage_webhooks": self.has_manage_webhooks_permission(request),
            "may_connect_qonto": self.has_connect_qonto_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def _back(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:invoices_webhooksubscription_changelist"))

    def register_view(self, request, provider: str):
        """A form with the address the provider is to call; posting it registers what is missing."""
        self.require(self.has_manage_webhooks_permission(request))
        url = request.POST.get("url", "") if request.method == "POST" else default_url(provider)
        if request.method == "POST":
            try:
                result = webhooks_register(provider=provider, url=url)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                level = messages.WARNING if result.without_secret else messages.SUCCESS
                self.message_user(request, result.summary(), level)
                return self._back()
        label = Provider(provider).label
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Register {label} webhooks",
            "provider": provider,
            "provider_label": label,
            "url": url or request.build_absolute_uri(reverse(ENDPOINTS[provider])),
        }
        return TemplateResponse(request, "admin/invoices/webhooksubscription/register.html", context)

    def refresh_view(self, request):
        """POST: our rows made what each provider holds (Qonto once connected)."""
        self.require(self.has_manage_webhooks_permission(request))
        if request.method != "POST":
            return self._back()
        for provider in Provider:
            try:
                result = webhooks_refresh(provider=provider)
            except ValidationError as exc:
                self.message_user(
                    request, f"{Provider(provider).label}: {' '.join(exc.messages)}", messages.WARNING
                )
            else:
                self.message_user(request, result.summary(), messages.SUCCESS)
        return self._back()

    def connect_qonto_view(self, request):
        """Off to Qonto's consent page, with a state bound to this session."""
        self.require(self.has_connect_qonto_permission(request))
        done = request.build_absolute_uri(reverse("admin:invoices_webhooksubscription_connect_qonto_done"))
        try:
            return HttpResponseRedirect(qonto_connect_start(session=request.session, redirect_uri=done))
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return self._back()

    def connect_qonto_done_view(self, request):
        """Where Qonto sends the staff member back, with a code (or an error) and our state."""
        self.require(self.has_connect_qonto_permission(request))
        try:
            qonto_connect_finish(session=request.session, params=request.GET)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(
                request,
                "Qonto is connected: every worker now calls Qonto with these tokens. "
                "Register Qonto webhooks next, if not done yet.",
                messages.SUCCESS,
            )
        return self._back()

    @admin.action(description="Delete at the provider", permissions=["manage_webhooks"])
    def delete_at_provider_action(self, request, queryset):
        """After a confirmation page: each subscription deleted at its provider, then here."""
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Delete webhook subscriptions at the provider",
                "subscriptions": list(queryset),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/invoices/webhooksubscription/delete_at_provider.html", context
            )
        deleted = 0
        for subscription in queryset:
            try:
                webhooks_delete(subscription=subscription)
            except ValidationError as exc:
                self.message_user(request, f"{subscription}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                deleted += 1
        if deleted:
            self.message_user(
                request,
                ngettext(
                    "%(n)d subscription is deleted at its provider and here.",
                    "%(n)d subscriptions are deleted at their providers and here.",
                    deleted,
                )
                % {"n": deleted},
                messages.SUCCESS,
            )
        return None
