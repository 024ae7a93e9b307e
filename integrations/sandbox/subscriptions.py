"""Where the product registers its webhook URLs at both sandboxed providers.

MijnKlantportaal, under ``/mkp/v1`` (auth, rate limit and error shapes of the rest of its API)::

    GET    /webhooks              the records, Laravel simplePaginate (15 a page), oldest first
    POST   /webhooks {url, type}  201 {"id": "wbh_...", "type", "url", "secret", "createdAt"}
    GET    /webhooks/{id}         the record (404 "No Webhook can be found for the given ID")
    DELETE /webhooks/{id}         204 (not documented by MijnKlantportaal; assumed)

``type`` is one of the types MijnKlantportaal documents (:data:`.webhooks.MKP_EVENT_TYPES`); the
sandbox only ever sends the invoice and customer ones. 422s as Laravel words them.

Qonto, under ``/qonto`` (OAuth only: a Bearer token with the ``webhook`` scope; the API key and
tokens without that scope get 403)::

    POST   /v2/webhook_subscriptions {callback_url (<= 512), types (>= 1), secret?, description?}
           201 {"id", "organization_id", "membership_id", "callback_url", "types", "description",
                "created_at", "updated_at", "secret"}; the secret (32 to 128 characters) is
                generated as ``whsec_...`` when not given, and is shown in this answer only
    GET    /v2/webhook_subscriptions?page&per_page  {"webhook_subscriptions": [...], "meta": {...}}
    GET    /v2/webhook_subscriptions/{id}           {"webhook_subscription": {...}}
    DELETE /v2/webhook_subscriptions/{id}           204

The list key: Qonto's reference page names it ``subscriptions`` while the TypeScript client
qontoctl reads ``webhook_subscriptions``; the sandbox answers ``webhook_subscriptions`` (a client
should accept both until the real API has been seen).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from integrations.sandbox import mkp, times
from integrations.sandbox.qonto import QontoApi
from integrations.sandbox.qonto_shapes import errors_response, not_found
from integrations.sandbox.store import Store
from integrations.sandbox.web import Request, Response, json_response
from integrations.sandbox.webhooks import (
    MKP_EVENT_TYPES,
    QONTO_TOPICS,
    MkpWebhook,
    QontoSubscription,
    new_secret,
)

MAX_CALLBACK_URL = 512
SECRET_LENGTHS = (32, 128)


def _json_object(req: Request) -> dict | None:
    try:
        body = req.json() if req.body.strip() else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class MkpWebhooks:
    def __init__(self, api: mkp.MkpApi, store: Store) -> None:
        self.api = api
        self.store = store
        for method, pattern, name, handler in (
            ("GET", "/webhooks", "list_webhooks", self.list),
            ("POST", "/webhooks", "create_webhook", self.create),
            ("GET", "/webhooks/{id}", "get_webhook", self.get),
            ("DELETE", "/webhooks/{id}", "delete_webhook", self.delete),
        ):
            api.router.add(method, pattern, name, handler)

    @staticmethod
    def to_json(hook: MkpWebhook) -> dict:
        return {
            "id": hook.id,
            "type": hook.type,
            "url": hook.url,
            "secret": hook.secret,
            "createdAt": times.atom(hook.created_at),
        }

    def list(self, req: Request) -> Response:
        with self.store.lock:
            rows = list(self.store.data.mkp_webhooks.values())
            body = self.api.paginate(
                req, "/webhooks", lambda start, count: rows[start : start + count], self.to_json
            )
        return json_response(200, body)

    def create(self, req: Request) -> Response:
        body = _json_object(req) or {}
        url, kind = body.get("url"), body.get("type")
        errors = []
        if url in (None, ""):
            errors.append("The url field is required.")
        elif not _is_url(url):
            errors.append("The url field must be a valid URL.")
        if kind in (None, ""):
            errors.append("The type field is required.")
        elif kind not in MKP_EVENT_TYPES:
            errors.append("The selected type is invalid.")
        if errors:
            return mkp.validation_error(errors)
        with self.store.lock:
            hook = MkpWebhook(
                id=self.store.mkp_id("wbh_"),
                type=kind,
                url=url,
                secret=new_secret(),
                created_at=self.store.tick().replace(microsecond=0),
            )
            self.store.data.mkp_webhooks[hook.id] = hook
        return json_response(201, self.to_json(hook))

    def get(self, req: Request) -> Response:
        with self.store.lock:
            hook = self.store.data.mkp_webhooks.get(req.params["id"])
        if hook is None:
            return mkp.error(404, "No Webhook can be found for the given ID")
        return json_response(200, self.to_json(hook))

    def delete(self, req: Request) -> Response:
        with self.store.lock:
            hook = self.store.data.mkp_webhooks.pop(req.params["id"], None)
        if hook is None:
            return mkp.error(404, "No Webhook can be found for the given ID")
        return Response(204)


class QontoSubscriptions:
    def __init__(self, api: QontoApi, store: Store) -> None:
        self.api = api
        self.store = store
        for method, pattern, name, handler in (
            ("GET", "/v2/webhook_subscriptions", "list_subscriptions", self.list),
            ("POST", "/v2/webhook_subscriptions", "create_subscription", self.create),
            ("GET", "/v2/webhook_subscriptions/{id}", "get_subscription", self.get),
            ("DELETE", "/v2/webhook_subscriptions/{id}", "delete_subscription", self.delete),
        ):
            api.router.add(method, pattern, name, handler)
            api.required_scopes[name] = "webhook"

    def to_json(self, subscription: QontoSubscription) -> dict:
        return {
            "id": subscription.id,
            "organization_id": self.api.config.organization_id,
            "membership_id": self.api.config.membership_id,
            "callback_url": subscription.callback_url,
            "types": list(subscription.types),
            "description": subscription.description,
            "created_at": times.paris_iso(subscription.created_at),
            "updated_at": times.paris_iso(subscription.updated_at),
        }

    def create(self, req: Request) -> Response:
        body = _json_object(req)
        if body is None:
            return errors_response(400, "invalid_body", "The body must be a JSON object.")
        url, types = body.get("callback_url"), body.get("types")
        secret, description = body.get("secret"), body.get("description")
        low, high = SECRET_LENGTHS
        problem = None
        if not _is_url(url):
            problem = ("callback_url", "callback_url must be an absolute http(s) URL")
        elif len(url) > MAX_CALLBACK_URL:
            problem = ("callback_url", f"callback_url must be at most {MAX_CALLBACK_URL} characters")
        elif not isinstance(types, list) or not types:
            problem = ("types", "types must be a list of at least one event type")
        elif any(t not in QONTO_TOPICS for t in types):
            problem = ("types", f"types must be within: {', '.join(QONTO_TOPICS)}")
        elif secret is not None and (not isinstance(secret, str) or not low <= len(secret) <= high):
            problem = ("secret", f"secret must be a string of {low} to {high} characters")
        elif description is not None and not isinstance(description, str):
            problem = ("description", "description must be a string")
        if problem:
            return errors_response(422, "invalid", problem[1], {"pointer": f"/{problem[0]}"})
        with self.store.lock:
            now = self.store.tick().replace(microsecond=0)
            subscription = QontoSubscription(
                id=self.store.uuid(),
                callback_url=url,
                types=list(dict.fromkeys(types)),
                secret=secret or "whsec_" + secrets.token_urlsafe(32),
                description=description,
                created_at=now,
                updated_at=now,
            )
            self.store.data.qonto_subscriptions[subscription.id] = subscription
        return json_response(201, {**self.to_json(subscription), "secret": subscription.secret})

    def list(self, req: Request) -> Response:
        paging = self.api.paging(req)
        if isinstance(paging, Response):
            return paging
        with self.store.lock:
            rows = list(self.store.data.qonto_subscriptions.values())
        return json_response(200, self.api.page_body("webhook_subscriptions", rows, *paging, self.to_json))

    def get(self, req: Request) -> Response:
        with self.store.lock:
            subscription = self.store.data.qonto_subscriptions.get(req.params["id"])
        if subscription is None:
            return not_found("webhook subscription", req.params["id"])
        return json_response(200, {"webhook_subscription": self.to_json(subscription)})

    def delete(self, req: Request) -> Response:
        with self.store.lock:
            subscription = self.store.data.qonto_subscriptions.pop(req.params["id"], None)
        if subscription is None:
            return not_found("webhook subscription", req.params["id"])
        return Response(204)
