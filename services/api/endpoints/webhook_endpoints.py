"""Outbound webhooks: an organization's endpoints that receive its orders' events, signed, and their logs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import WebhookManager, Webhooks
from services.api.endpoints import error_responses
from services.pages import Page
from services.webhooks.outbound.schemas import (
    DeliveryOut,
    EndpointIn,
    EndpointOut,
    EndpointWithSecretOut,
)

router = APIRouter(prefix="/webhook-endpoints", tags=["webhook endpoints"])


@router.post("", status_code=201, responses=error_responses(400, 404, 409, 422))
async def register_endpoint(
    body: EndpointIn, principal: WebhookManager, webhooks: Webhooks
) -> EndpointWithSecretOut:
    """Register an HTTPS endpoint for the organization's order events (`order.routed`, `order.shipped`,
    ...; `event_types` empty: all). Each event is POSTed as JSON, signed per Standard Webhooks with the
    `secret` in this response (shown once). Technicians register for their own organization; operators
    give `organization_id`. The URL must resolve to public addresses only: 422 `webhook_target_forbidden`
    (`details.reason`: `loopback`, `private`, `link_local`, `metadata`, ...); 422 `invalid_webhook_url` for
    anything but an http(s) URL without credentials."""
    endpoint = await webhooks.register(body, scope=principal.catalog_scope)
    return EndpointWithSecretOut.revealing(endpoint)


@router.get("", responses=error_responses())
async def list_endpoints(principal: WebhookManager, webhooks: Webhooks) -> list[EndpointOut]:
    """The organization's endpoints (operators: all), oldest first; secrets are never shown again."""
    return [EndpointOut.of(e) for e in await webhooks.endpoints(scope=principal.catalog_scope)]


@router.get("/{endpoint_id}", responses=error_responses(404, 422))
async def get_endpoint(endpoint_id: uuid.UUID, principal: WebhookManager, webhooks: Webhooks) -> EndpointOut:
    return EndpointOut.of(await webhooks.endpoint(endpoint_id, scope=principal.catalog_scope))


@router.delete("/{endpoint_id}", status_code=204, responses=error_responses(404, 422))
async def delete_endpoint(endpoint_id: uuid.UUID, principal: WebhookManager, webhooks: Webhooks) -> None:
    """Delete the endpoint and its delivery log; nothing more is sent to it."""
    await webhooks.delete(endpoint_id, scope=principal.catalog_scope)


@router.post("/{endpoint_id}/enable", responses=error_responses(404, 422))
async def enable_endpoint(
    endpoint_id: uuid.UUID, principal: WebhookManager, webhooks: Webhooks
) -> EndpointOut:
    """Enable an endpoint that was disabled after repeated failures, with its failure count reset. Deliveries
    abandoned while it was disabled are not sent again; new events are."""
    return EndpointOut.of(await webhooks.enable(endpoint_id, scope=principal.catalog_scope))


@router.post("/{endpoint_id}/rotate-secret", responses=error_responses(404, 422))
async def rotate_secret(
    endpoint_id: uuid.UUID, principal: WebhookManager, webhooks: Webhooks
) -> EndpointWithSecretOut:
    """A new signing secret, shown in this response only. For 24 hours every webhook carries two signatures
    in `webhook-signature`, by the new secret and by the old one, so the receiver can switch without
    dropping any."""
    return EndpointWithSecretOut.revealing(
        await webhooks.rotate_secret(endpoint_id, scope=principal.catalog_scope)
    )


@router.get("/{endpoint_id}/deliveries", responses=error_responses(404, 422))
async def list_deliveries(
    endpoint_id: uuid.UUID,
    principal: WebhookManager,
    webhooks: Webhooks,
    cursor: Annotated[uuid.UUID | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[DeliveryOut]:
    """The delivery log, newest first: each event sent to the endpoint with its status (`pending`,
    `delivered`, `failed` after the last retry, `abandoned` when the endpoint was disabled), its attempts
    with their status codes or errors, and when the next attempt is due."""
    found, next_cursor = await webhooks.deliveries(
        endpoint_id, scope=principal.catalog_scope, cursor=cursor, limit=limit
    )
    return Page[DeliveryOut](
        items=[DeliveryOut.of(d) for d in found], next_cursor=str(next_cursor) if next_cursor else None
    )
