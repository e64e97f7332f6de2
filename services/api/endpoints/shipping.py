"""Shipments: what an order's parcel is doing, its label, its timeline; operators retry parked bookings and
manage partners' webhook secrets."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from services.api.deps import Admin, OrderReader, PartnerSecretService, Shipping
from services.api.downloads import content_download, download_response
from services.api.endpoints import error_responses
from services.fulfilment.timeline import Timelines
from services.shipping.schemas import PartnerSecretIn, PartnerSecretOut, ShipmentOut, TimelineOut

router = APIRouter(tags=["shipping"])


@router.get("/orders/{order_id}/shipment", responses=error_responses(404, 422))
async def order_shipment(order_id: uuid.UUID, principal: OrderReader, shipping: Shipping) -> ShipmentOut:
    """The order's parcel: courier, tracking number and status, pickup window, tracking events."""
    return await shipping.describe(await shipping.of_order(order_id, visible_to=principal.catalog_scope))


@router.get(
    "/orders/{order_id}/shipment/label",
    response_class=StreamingResponse,
    responses={**error_responses(404, 422), 200: {"content": {"application/pdf": {}}}},
)
async def shipment_label(
    order_id: uuid.UUID, principal: OrderReader, shipping: Shipping
) -> StreamingResponse:
    """The courier's shipping label (PDF), once booked."""
    label = await shipping.label(order_id, visible_to=principal.catalog_scope)
    return download_response(
        content_download(label.pdf, media_type="application/pdf", filename=label.filename)
    )


@router.get("/orders/{order_id}/timeline", responses=error_responses(404, 422))
async def order_timeline(order_id: uuid.UUID, principal: OrderReader, shipping: Shipping) -> TimelineOut:
    """Routing, printing and shipping events of the order, oldest first, with its current ETA."""
    return await Timelines(shipping).of(order_id, visible_to=principal.catalog_scope)


@router.post("/shipments/{shipment_id}/retry-booking", responses=error_responses(404, 409, 422))
async def retry_booking(shipment_id: uuid.UUID, _: Admin, shipping: Shipping) -> ShipmentOut:
    """Operators: book a shipment parked as `needs_attention` again (after fixing its site, say)."""
    return await shipping.describe(await shipping.retry_booking(shipment_id))


@router.post(
    "/partners/{partner_id}/webhook-secrets",
    status_code=201,
    tags=["accounts"],
    responses=error_responses(400, 404, 422),
)
async def add_partner_secret(
    partner_id: uuid.UUID, body: PartnerSecretIn, _: Admin, secrets: PartnerSecretService
) -> PartnerSecretOut:
    """A secret for the partner's webhooks; shown in this answer only. Rotate by adding a new one with
    `retire_others_after_hours`: both verify until then."""
    hours = body.retire_others_after_hours
    added = await secrets.add(
        partner_id,
        secret=body.secret,
        retire_others_after=timedelta(hours=hours) if hours is not None else None,
    )
    return PartnerSecretOut(
        id=added.id,
        partner_id=added.partner_id,
        created_at=added.created_at,
        expires_at=added.expires_at,
        secret=added.secret,
    )


@router.get("/partners/{partner_id}/webhook-secrets", tags=["accounts"], responses=error_responses(404, 422))
async def list_partner_secrets(
    partner_id: uuid.UUID, _: Admin, secrets: PartnerSecretService
) -> list[PartnerSecretOut]:
    return [
        PartnerSecretOut(
            id=s.id, partner_id=s.partner_id, created_at=s.created_at, expires_at=s.expires_at, secret=None
        )
        for s in await secrets.of(partner_id)
    ]
