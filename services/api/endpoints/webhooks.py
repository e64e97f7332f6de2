"""Inbound webhooks from logistics partners. Authenticated by signature, not by API key; stored, then
processed by a worker (``services.webhooks.inbound.service``). Operators list the events that failed
every attempt (parked) and retry them."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from services.api.deps import Admin, Inbound, Resources
from services.api.endpoints import error_responses
from services.shipping.schemas import WebhookAck
from services.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from services.webhooks.inbound.schemas import InboundWebhookOut
from services.webhooks.inbound.service import KARRIO_HEADER, PartnerEvent, too_large

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
_RESPONSES = {k: v for k, v in error_responses(400, 413, 422).items() if k != 403}


def _header(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string", "minLength": 1, **schema},
        "description": description,
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` put in place: inside an operation, ``#/$defs/...`` would point at the
    root of the OpenAPI document, where they are not."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return dict(inline(schema))


# The routes read the raw body (the signature covers its bytes), so FastAPI cannot document what they take;
# these say it, so clients and the API fuzzer see the headers and body a partner must send.
_PARTNER_REQUEST = {
    "parameters": [
        # The formats ``services.signing.verify`` takes (anything else: 400 webhook_headers_invalid).
        _header(
            ID_HEADER,
            "The event's id; a replay with the same id is acknowledged as a duplicate",
            maxLength=200,
        ),
        _header(
            TIMESTAMP_HEADER,
            "Unix seconds when it was sent; within 5 minutes of our clock",
            pattern="^[0-9]{1,12}$",
        ),
        _header(SIGNATURE_HEADER, "`v1,<base64 HMAC-SHA256>` entries, space-separated (Standard Webhooks)"),
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inlined(PartnerEvent.model_json_schema())}},
    },
}
_KARRIO_REQUEST = {
    "parameters": [_header(KARRIO_HEADER, "The webhook subscription's secret, as Karrio sends it")],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "A Karrio event"}}},
    },
}


async def _body(request: Request, limit: int, source: str) -> bytes:
    """The raw body, refused once it passes ``limit`` (without reading the rest)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(source, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(source, limit)
    return bytes(body)


@router.post("/partners/{partner}", status_code=202, responses=_RESPONSES, openapi_extra=_PARTNER_REQUEST)
async def partner_webhook(
    partner: str, request: Request, inbound: Inbound, resources: Resources
) -> WebhookAck:
    """A partner's tracking event, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`; +-5 min). Body: `{"type": "tracking.updated", "data": {"tracking_number",
    "status", "occurred_at", "description", "location", "estimated_delivery_at"}}` with `status` one of
    pending, picked_up, in_transit, out_for_delivery, delivered, delivery_failed, on_hold, return_to_sender,
    cancelled, unknown. 202 once stored (a replayed `webhook-id` too, marked `duplicate`); whether the
    tracking number is ours is never said."""
    body = await _body(request, resources.settings.webhook_max_body_bytes, "partner")
    receipt = await inbound.receive_partner(partner, request.headers, body)
    return WebhookAck(accepted=True, duplicate=receipt.duplicate)


@router.post("/karrio", status_code=202, responses=_RESPONSES, openapi_extra=_KARRIO_REQUEST)
async def karrio_webhook(request: Request, inbound: Inbound, resources: Resources) -> WebhookAck:
    """Karrio's webhook events; its `X-Event-Id` header carries the subscription secret."""
    body = await _body(request, resources.settings.webhook_max_body_bytes, "karrio")
    receipt = await inbound.receive_karrio(request.headers, body)
    return WebhookAck(accepted=True, duplicate=receipt.duplicate)


@router.get("/inbound/parked", responses=error_responses())
async def parked_inbound_webhooks(_: Admin, inbound: Inbound) -> list[InboundWebhookOut]:
    """Operators: partners' events that failed every attempt at applying them, oldest first (at most
    1000), with the last error."""
    return [InboundWebhookOut.model_validate(row) for row in await inbound.parked()]


@router.post("/inbound/{inbound_id}/retry", responses=error_responses(404, 409, 422))
async def retry_inbound_webhook(inbound_id: uuid.UUID, _: Admin, inbound: Inbound) -> InboundWebhookOut:
    """Operators: apply a parked event again, its attempts counted afresh (after fixing the cause)."""
    return InboundWebhookOut.model_validate(await inbound.retry(inbound_id))
