"""Inbound webhooks from logistics partners. Authenticated by signature, not by API key; stored, then
processed by a worker (``services.webhooks.inbound``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.api.deps import Inbound, Resources
from services.api.endpoints import error_responses
from services.shipping.schemas import WebhookAck
from services.webhooks.inbound import too_large

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
_RESPONSES = {k: v for k, v in error_responses(400, 413, 422).items() if k != 403}


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


@router.post("/partners/{partner}", status_code=202, responses=_RESPONSES)
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


@router.post("/karrio", status_code=202, responses=_RESPONSES)
async def karrio_webhook(request: Request, inbound: Inbound, resources: Resources) -> WebhookAck:
    """Karrio's webhook events; its `X-Event-Id` header carries the subscription secret."""
    body = await _body(request, resources.settings.webhook_max_body_bytes, "karrio")
    receipt = await inbound.receive_karrio(request.headers, body)
    return WebhookAck(accepted=True, duplicate=receipt.duplicate)
