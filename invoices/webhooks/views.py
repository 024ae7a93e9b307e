"""The webhook endpoints: outside the admin, no login, no CSRF (a provider has no session), POST
only. The signature is the authentication."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from invoices.models import Provider
from invoices.webhooks.receiving import webhook_delivery_receive


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse({"error": f"The body is larger than {limit} bytes."}, status=413)


def _receive(request: HttpRequest, provider: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    if _declared_length(request) > limit:
        return _too_large(limit)
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large(limit)
    receipt = webhook_delivery_receive(provider=provider, headers=request.headers, body=body)
    delivery = receipt.delivery
    if not delivery.verified:
        return JsonResponse({"error": delivery.error, "delivery": delivery.pk}, status=401)
    if not receipt.queued:
        return JsonResponse({"error": "Stored but not queued; send it again."}, status=503)
    return JsonResponse({"received": delivery.pk})


@csrf_exempt
@transaction.non_atomic_requests
def mkp(request: HttpRequest):
    return _receive(request, Provider.MKP)


@csrf_exempt
@transaction.non_atomic_requests
def qonto(request: HttpRequest):
    return _receive(request, Provider.QONTO)
