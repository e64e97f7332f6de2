"""The courier port over a Karrio server's REST API (checked against karrio-server 2026.1, generic carrier).

I/O only: the HTTP calls. What is sent and what the answers mean is ``mapping`` (pure, unit-tested).

Karrio is an open-source shipping gateway in front of many carriers. A ``KarrioCourier`` books through the
active connections of one carrier name (``generic`` by default: Karrio's offline custom carrier, which rates,
buys and prints a real PDF label, but has no tracking API of its own).

What Karrio offers, and how each operation uses it:

- quote: ``POST /v1/proxy/rates`` with ``carrier_ids`` = the ids of the carrier's active connections
  (``GET /v1/connections?carrier_name=...&active=true``), so another carrier on the same Karrio never answers.
- book: Karrio has no idempotency header, so the key rides in the shipment's ``metadata``
  (``mapping.IDEMPOTENCY_KEY_FIELD``) and our reference in ``reference``. Shipments of an attempt are found
  with ``GET /v1/shipments?reference=R&metadata_key=K&metadata_value=V``: ``reference`` narrows in the
  database first (a substring match), ``metadata_value`` is then matched by Karrio in Python over what is
  left, and we re-check the key exactly (it alone names the booking). Only when there are none is a draft
  created (``POST /v1/shipments`` with ``mapping.draft_body``: no ``service``, so rated, not bought) and the
  lookup repeated.
  One shipment is then elected among those with the key (``mapping.elect``) and, if a draft, bought with
  ``POST /v1/shipments/{id}/purchase`` at the rate of ``request.service``, else the fastest (then cheapest)
  rate; Karrio refuses a second purchase with 409 ("cannot be purchased again"). A retry after a lost answer
  or a killed worker finds the purchased shipment and returns it; a draft left by a worker killed before the
  purchase is bought; two concurrent attempts elect the same oldest draft, so at most one purchase reaches
  the carrier unless both pass Karrio's state check in the same instant (Karrio does not lock the row).
  Losing drafts stay behind, unbought. A key whose shipment was cancelled is refused (``booking_cancelled``):
  a new booking needs a new key. The generic carrier gives no pickup window: Karrio is told
  ``shipping_date`` = ``ready_at``, and the booking is collectable from then on, without an end.
- label: the purchase answer carries it (``shipping_documents[].base64``); a shipment found later does not
  (lists leave ``base64`` empty), so it is fetched with ``POST /v1/shipments/{id}/documents/label``.
  ``GET /v1/shipments/{id}/label.pdf`` serves the same bytes but is left out of Karrio's API schema.
- track: the shipment by ``GET /v1/shipments?tracking_number=`` (a substring filter: we match exactly),
  then its tracker ``GET /v1/trackers/{tracker_id}``. ``GET /v1/trackers/{tracking_number}`` also works but
  is not scoped to the caller's account. Karrio keeps events newest first and rewrites the first
  ``in_transit`` event of a tracker to ``picked_up`` when there is none; its own "label created" event has the
  status ``created``. A shipment without a tracker (Karrio creates none for carriers without a tracking API
  until one is made) reports its shipment status (``mapping.SHIPMENT_STATUSES``): PENDING when just bought.
- cancel: ``POST /v1/shipments/{id}/cancel``: 200 the first time, 202 when already cancelled, 409 once the
  parcel is under way (shipment status shipped, in_transit, delivered...).
- webhooks: ``POST /v1/webhooks`` answers with a ``secret``. Karrio does not sign: it sends that secret as
  is in the ``X-Event-Id`` header of every delivery, body ``{"event": ..., "data": <tracker or shipment>}``
  and nothing else (no event id, no timestamp), one POST without retry. See ``mapping.parse_webhook``.

Errors (everything leaves as a ``CourierError``):

    CourierError
    ├── CourierUnavailable (retryable)  timeout, refused or broken connection, 5xx, 429, an unreadable answer
    ├── CourierRejected                 any other 4xx; ``code`` says which (``mapping.rejection_code``)
    └── ShipmentNotFound                no shipment with that tracking number (track, cancel)

Karrio answers 424 when the carrier behind it refused or failed; that is CourierRejected
(``courier_carrier_error``) since Karrio does not tell a carrier's outage from its refusal.
An unreadable 2xx answer is CourierUnavailable rather than CourierRejected: it says nothing about our
request (a proxy's error page, a cut-off body, a Karrio upgrade that an operator must look at), and after a
purchase it may hide a shipment that was bought. Retrying is safe because booking is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from services.couriers.ports import (
    Booking,
    BookingRequest,
    Capabilities,
    CourierError,
    CourierRejected,
    CourierUnavailable,
    Parcel,
    Place,
    ServiceOption,
    ShipmentNotFound,
    Tracking,
)
from services.couriers.providers.karrio import mapping
from services.couriers.providers.karrio.mapping import (
    GENERIC_CARRIER,
    IDEMPOTENCY_KEY_FIELD,
    WEBHOOK_EVENTS,
    KarrioConnection,
    KarrioLabel,
    KarrioPage,
    KarrioRates,
    KarrioShipment,
    KarrioTracker,
    KarrioWebhook,
    Malformed,
)

_PAGE_SIZE: Final = 100

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")


class KarrioCourier:
    """A courier behind a Karrio server at ``base_url``, through its connections of ``carrier_name``.

    Args:
        base_url: the Karrio API's root, e.g. ``http://127.0.0.1:5002``.
        token: a Karrio API token (header ``Authorization: Token <token>``).
        carrier_name: Karrio's carrier slug whose connections rate and ship.
        timeout_s: per request; a purchase answer carries the label (about 230 kB for the generic carrier).
        transport: for tests.
    """

    name: str = "karrio"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        carrier_name: str = GENERIC_CARRIER,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.carrier_name = carrier_name
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=timeout_s,
            transport=transport,
        )

    async def capabilities(self) -> Capabilities:
        services = await self._call("GET", f"/v1/carriers/{self.carrier_name}/services")
        return mapping.capabilities(services, name=self.name, carrier_name=self.carrier_name)

    async def quote(self, origin: Place, destination: Place, parcel: Parcel) -> list[ServiceOption]:
        body = mapping.rate_request(origin, destination, parcel, await self._carrier_ids())
        rates = self._read(KarrioRates, await self._call("POST", "/v1/proxy/rates", json=body))
        return self._mapped(lambda: mapping.service_options(rates))

    async def book(self, request: BookingRequest) -> Booking:
        shipment = mapping.elect(await self._attempts(request))
        if shipment is None:
            await self._create_draft(request)
            shipment = mapping.elect(await self._attempts(request))
            if shipment is None:
                raise CourierUnavailable(
                    f"Karrio does not list the shipment it created for {request.reference}"
                )
        if shipment.status == "cancelled":
            raise CourierRejected(
                f"the booking with key {request.idempotency_key} was cancelled ({shipment.id}); "
                "book again with a new key",
                code="booking_cancelled",
            )
        if shipment.status == "draft":
            shipment = await self._purchase(shipment, request.service)
        label = self._mapped(lambda: mapping.purchased_label(shipment)) or await self._label(shipment.id)
        return self._mapped(lambda: mapping.booking_from_shipment(shipment, label, request))

    async def track(self, tracking_number: str) -> Tracking:
        shipment = await self._shipment(tracking_number)
        tracker = None
        if shipment.tracker_id is not None:
            answer = await self._call("GET", f"/v1/trackers/{shipment.tracker_id}", missing=ShipmentNotFound)
            tracker = self._read(KarrioTracker, answer)
        return self._mapped(lambda: mapping.tracking_from_shipment(shipment, tracker, tracking_number))

    async def cancel(self, tracking_number: str) -> None:
        shipment = await self._shipment(tracking_number)
        if shipment.status != "cancelled":
            await self._call("POST", f"/v1/shipments/{shipment.id}/cancel", missing=ShipmentNotFound)

    async def subscribe_webhook(
        self, url: str, *, events: Sequence[str] | None = None, description: str = "spareflow"
    ) -> tuple[str, str]:
        """Have Karrio POST ``events`` (default ``WEBHOOK_EVENTS``) to ``url``; returns (webhook id, secret).

        Subscribing a URL again reuses its subscription (enabled again, with these events): two would
        deliver everything twice. Karrio disables a subscription after more than 5 failed deliveries in a row.
        """
        wanted = list(events) if events is not None else list(WEBHOOK_EVENTS)
        hooks = await self._all(KarrioPage[KarrioWebhook], "/v1/webhooks")
        hook = next((hook for hook in hooks if hook.url == url), None)
        if hook is None:
            body = mapping.webhook_subscription(url, wanted, description)
            hook = self._read(KarrioWebhook, await self._call("POST", "/v1/webhooks", json=body))
        elif hook.disabled or sorted(hook.enabled_events) != sorted(wanted):
            body = mapping.webhook_update(wanted, description)
            hook = self._read(KarrioWebhook, await self._call("PATCH", f"/v1/webhooks/{hook.id}", json=body))
        return hook.id, hook.secret

    async def ensure_generic_connection(self) -> str:
        """The id of an active ``generic`` connection, created when there is none.

        Karrio lets several connections share a ``carrier_id``, so this looks before it creates.
        """
        active = await self._active_connections(GENERIC_CARRIER)
        if active:
            return active[0].id
        created = await self._call("POST", "/v1/connections", json=mapping.generic_connection())
        return self._read(KarrioConnection, created).id

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- booking steps ---

    async def _attempts(self, request: BookingRequest) -> list[KarrioShipment]:
        query = {
            "reference": request.reference,
            "metadata_key": IDEMPOTENCY_KEY_FIELD,
            "metadata_value": request.idempotency_key,
        }
        found = await self._all(KarrioPage[KarrioShipment], "/v1/shipments", query)
        return mapping.with_key(found, request.idempotency_key)

    async def _create_draft(self, request: BookingRequest) -> None:
        body = {**mapping.draft_body(request), "carrier_ids": await self._carrier_ids()}
        await self._call("POST", "/v1/shipments", json=body)

    async def _purchase(self, draft: KarrioShipment, service: str | None) -> KarrioShipment:
        rate = mapping.choose_rate(draft.rates, service)
        path = f"/v1/shipments/{draft.id}/purchase"
        try:
            answer = await self._call("POST", path, json={"selected_rate_id": rate.id})
        except CourierRejected as exc:
            if exc.code != "courier_conflict":
                raise
            # Another attempt bought this draft first (Karrio: "cannot be purchased again"): that is ours.
            current = self._read(KarrioShipment, await self._call("GET", f"/v1/shipments/{draft.id}"))
            if current.status in ("draft", "cancelled"):
                raise
            return current
        return self._read(KarrioShipment, answer)

    async def _label(self, shipment_id: str) -> bytes:
        # A bought shipment always has its label: a 404 here is Karrio's trouble, not our request's.
        path = f"/v1/shipments/{shipment_id}/documents/label"
        document = self._read(KarrioLabel, await self._call("POST", path, missing=CourierUnavailable))
        return self._mapped(lambda: mapping.decode_label(document.base64))

    # --- lookups ---

    async def _carrier_ids(self) -> list[str]:
        ids = sorted({c.carrier_id for c in await self._active_connections(self.carrier_name)})
        if not ids:
            raise CourierRejected(
                f"Karrio has no active connection for carrier {self.carrier_name!r}",
                code="courier_not_configured",
            )
        return ids

    async def _active_connections(self, carrier_name: str) -> list[KarrioConnection]:
        query = {"carrier_name": carrier_name, "active": "true"}
        connections = await self._all(KarrioPage[KarrioConnection], "/v1/connections", query)
        return [c for c in connections if c.active]

    async def _shipment(self, tracking_number: str) -> KarrioShipment:
        if not tracking_number.strip():
            # Karrio's filter is a substring match: an empty number would match every shipment.
            raise ShipmentNotFound("an empty tracking number")
        query = {"tracking_number": tracking_number}
        found = await self._all(KarrioPage[KarrioShipment], "/v1/shipments", query)
        shipment = mapping.with_tracking_number(found, tracking_number)
        if shipment is None:
            raise ShipmentNotFound(f"Karrio has no shipment with tracking number {tracking_number!r}")
        return shipment

    async def _all(
        self, page_model: type[KarrioPage[T]], path: str, query: Mapping[str, str] | None = None
    ) -> list[T]:
        found: list[T] = []
        offset = 0
        while True:
            params = {**(query or {}), "limit": str(_PAGE_SIZE), "offset": str(offset)}
            page = self._read(page_model, await self._call("GET", path, params=params))
            found.extend(page.results)
            if page.next is None or not page.results:
                return found
            offset += len(page.results)

    # --- the wire ---

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        missing: type[CourierError] | None = None,
    ) -> object:
        """Karrio's JSON answer to one request. ``missing``: what a 404 means here (else a rejection)."""
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise CourierUnavailable(f"Karrio {method} {path}: no answer in time ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise CourierUnavailable(f"Karrio {method} {path}: {exc!r}") from exc
        if not response.is_success:
            request = response.request
            where = f"Karrio {request.method} {request.url.path}: HTTP {response.status_code}"
            raise mapping.failure(
                response.status_code, response.content, response.text, where=where, missing=missing
            )
        try:
            answer: object = response.json()
        except ValueError as exc:
            raise CourierUnavailable(f"Karrio {method} {path}: not JSON: {response.text[:200]!r}") from exc
        return answer

    @staticmethod
    def _read(model: type[T], answer: object) -> T:
        try:
            return model.model_validate(answer)
        except ValidationError as exc:
            raise CourierUnavailable(f"unexpected answer from Karrio: {exc}") from exc

    @staticmethod
    def _mapped(read: Callable[[], R]) -> R:
        try:
            return read()
        except Malformed as exc:
            raise CourierUnavailable(f"unexpected answer from Karrio: {exc}") from exc
