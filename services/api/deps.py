"""FastAPI dependencies as Annotated aliases. Roles are declared per endpoint through these aliases.

``Security(authenticate, scopes=[roles...])`` puts the allowed roles on the route itself, where the
OpenAPI schema and the authorization matrix test read them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.service import CatalogService, IncomingModel
from services.accounts.models import Role
from services.accounts.service import AccountsService, Principal
from services.api.edge import NO_KEY, PRINCIPAL, UNKNOWN_KEY
from services.api.resources import AppResources
from services.api.uploads import receive_model_upload
from services.db import transaction
from services.errors import Forbidden, NotAuthenticated
from services.factories.service import SiteRegistry
from services.fulfilment.leases import FactoryCaller, FactoryJobs
from services.fulfilment.unit_of_work import site_registry
from services.orders.service import OrderService
from services.printing.service import PrintingService
from services.routing.placement import Placement
from services.shipping.service import ShippingService
from services.webhooks.inbound.partners import PartnerSecrets
from services.webhooks.inbound.service import InboundWebhooks
from services.webhooks.outbound.service import WebhookPolicy, WebhookService


def get_resources(request: Request) -> AppResources:
    resources: AppResources = request.app.state.resources
    return resources


Resources = Annotated[AppResources, Depends(get_resources)]


async def get_session(resources: Resources) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, rolled back when it raises."""
    async with transaction(resources.sessions, resources.queue) as session:
        yield session


# scope="function": the commit runs when the endpoint returns, before the response is sent, so a client
# never sees a success for a transaction that then failed to commit.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sf_...`")


async def authenticate(
    scopes: SecurityScopes,
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # The edge looked the key up before the body was read; it leaves the lookup to us when the database
    # could not answer it then (this one answers 503 if it still cannot).
    principal: Principal | None = getattr(request.state, PRINCIPAL, None)
    if principal is None:
        if credentials is None:
            raise NotAuthenticated(NO_KEY)
        principal = await AccountsService(session).authenticate(credentials.credentials)
    if principal is None:
        raise NotAuthenticated(UNKNOWN_KEY, code="invalid_api_key")
    if principal.role not in scopes.scopes:
        raise Forbidden(
            f"a {principal.role} key may not call this endpoint", details={"allowed_roles": scopes.scopes}
        )
    return principal


Admin = Annotated[Principal, Security(authenticate, scopes=[Role.ADMIN])]
CatalogReader = Annotated[Principal, Security(authenticate, scopes=[Role.ADMIN, Role.TECHNICIAN])]
# Orders are placed by an organization's technicians; operators read and steer them.
Technician = Annotated[Principal, Security(authenticate, scopes=[Role.TECHNICIAN])]
OrderReader = CatalogReader
# A microfactory's agents: only their own site's print jobs.
FactoryKey = Annotated[Principal, Security(authenticate, scopes=[Role.FACTORY])]
AnyRole = Annotated[Principal, Security(authenticate, scopes=list(Role))]


def get_catalog(session: DbSession, resources: Resources) -> CatalogService:
    return CatalogService(session, resources.blobs, archive_limits=resources.settings.archive_limits)


def get_accounts(session: DbSession) -> AccountsService:
    return AccountsService(session)


Catalog = Annotated[CatalogService, Depends(get_catalog)]


def get_printing(session: DbSession, catalog: Catalog) -> PrintingService:
    return PrintingService(session, catalog)


Printing = Annotated[PrintingService, Depends(get_printing)]
Accounts = Annotated[AccountsService, Depends(get_accounts)]


def get_sites(session: DbSession) -> SiteRegistry:
    return site_registry(session)


Sites = Annotated[SiteRegistry, Depends(get_sites)]


def get_orders(
    session: DbSession, catalog: Catalog, printing: Printing, resources: Resources
) -> OrderService:
    return OrderService(session, catalog, printing, Placement(session, resources.snapshots))


Orders = Annotated[OrderService, Depends(get_orders)]


def get_factory_jobs(orders: Orders, resources: Resources) -> FactoryJobs:
    return FactoryJobs.configured(orders, resources.settings)


FactoryJobService = Annotated[FactoryJobs, Depends(get_factory_jobs)]


def factory_caller(principal: FactoryKey) -> FactoryCaller:
    assert principal.site_id is not None  # a factory key always belongs to one site
    return FactoryCaller(site_id=principal.site_id, key_id=principal.key_id)


Factory = Annotated[FactoryCaller, Depends(factory_caller)]


async def model_upload(request: Request, resources: Resources) -> AsyncIterator[IncomingModel]:
    settings = resources.settings
    async with receive_model_upload(
        request, staging_dir=settings.staging_dir, max_file_bytes=settings.max_upload_bytes
    ) as model:
        yield model


ModelUpload = Annotated[IncomingModel, Depends(model_upload)]


def get_shipping(orders: Orders) -> ShippingService:
    return ShippingService(orders)


Shipping = Annotated[ShippingService, Depends(get_shipping)]


def get_inbound(session: DbSession, resources: Resources) -> InboundWebhooks:
    return InboundWebhooks.configured(session, resources.settings)


Inbound = Annotated[InboundWebhooks, Depends(get_inbound)]


def get_partner_secrets(session: DbSession) -> PartnerSecrets:
    return PartnerSecrets(session)


PartnerSecretService = Annotated[PartnerSecrets, Depends(get_partner_secrets)]


def get_webhooks(session: DbSession, resources: Resources) -> WebhookService:
    return WebhookService(session, WebhookPolicy.of(resources.settings))


# Outbound webhooks: a technician manages its organization's endpoints; operators any organization's.
Webhooks = Annotated[WebhookService, Depends(get_webhooks)]
WebhookManager = CatalogReader
