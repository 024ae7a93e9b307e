"""The webhook admins: the deliveries received (read-only, processed again by admins) and the
subscriptions held at the providers (secrets masked), with the button that registers
MijnKlantportaal's webhooks."""

from __future__ import annotations

import contextlib
import json

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from invoices.admin.filters import YesNoFilter
from invoices.admin.records import ReadOnlyAdmin
from invoices.models import WebhookDelivery, WebhookSubscription
from invoices.webhooks.processing import webhook_deliveries_process_again
from invoices.webhooks.registration import default_mkp_url, webhooks_register_mkp


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
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
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
    change_list_template = "admin/invoices/webhooksubscription/change_list.html"

    def has_manage_webhooks_permission(self, request) -> bool:
        return self.has_codename(request, "manage_webhooks")

    @admin.display(description="event types")
    def types(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.event_types)

    @admin.display(description="secret")
    def masked_secret(self, obj: WebhookSubscription) -> str:
        return obj.masked_secret

    def get_urls(self):
        return [
            path(
                "register-mkp/",
                self.guarded_view(self.register_mkp_view),
                name="invoices_webhooksubscription_register_mkp",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "may_manage_webhooks": self.has_manage_webhooks_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def register_mkp_view(self, request):
        """A form with the address MijnKlantportaal is to call; posting it registers the six types."""
        self.require(self.has_manage_webhooks_permission(request))
        url = request.POST.get("url", "") if request.method == "POST" else default_mkp_url()
        if request.method == "POST":
            try:
                result = webhooks_register_mkp(url=url)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                level = messages.WARNING if result.without_secret else messages.SUCCESS
                self.message_user(request, result.summary(), level)
                return HttpResponseRedirect(reverse("admin:invoices_webhooksubscription_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Register MijnKlantportaal webhooks",
            "url": url or request.build_absolute_uri(reverse("webhook_mkp")),
        }
        return TemplateResponse(request, "admin/invoices/webhooksubscription/register_mkp.html", context)
