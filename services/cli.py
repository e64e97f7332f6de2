"""The ``spareflow`` command."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.sqltypes import utcnow
from parts_catalog.units import Unit
from services.accounts.models import Organization, Partner, Role
from services.accounts.service import AccountsService, IssuedKey
from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.embedded_redis import EmbeddedRedis
from services.errors import DomainError
from services.factories.models import Site
from services.factory_agent.cli import factory_agent
from services.migrate import upgrade
from services.observability.logs import configure_logging

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Spareflow: spare parts, printed on demand."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
accounts_app = typer.Typer(no_args_is_help=True, help="Organizations and partners.")
sites_app = typer.Typer(no_args_is_help=True, help="The microfactory registry.")
orders_app = typer.Typer(no_args_is_help=True, help="Orders.")
couriers_app = typer.Typer(no_args_is_help=True, help="Couriers.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(accounts_app, name="accounts")
app.add_typer(sites_app, name="sites")
app.add_typer(orders_app, name="orders")
app.add_typer(couriers_app, name="couriers")
app.command("factory-agent")(factory_agent)

T = TypeVar("T")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where embedded state lives (SPAREFLOW_DATA_DIR).")
]


class AccountKind(StrEnum):
    ORGANIZATION = "organization"
    PARTNER = "partner"


_ACCOUNT_MODELS: dict[AccountKind, type[Organization | Partner]] = {
    AccountKind.ORGANIZATION: Organization,
    AccountKind.PARTNER: Partner,
}


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir else Settings()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's work; a refused request ends the command with its code, not a traceback."""
    try:
        return asyncio.run(coro)
    except DomainError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from exc


@contextmanager
def redis_for(settings: Settings) -> Iterator[str]:
    """The configured Redis, or an embedded one for as long as the block runs."""
    if settings.redis_url:
        yield settings.redis_url
        return
    with EmbeddedRedis(settings.data_dir) as url:
        yield url


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply every pending migration."""
    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _run(upgrade(settings.resolved_database_url))
    typer.echo("database is up to date")


async def _in_transaction(settings: Settings, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one command's database work as one unit of work on its own short-lived engine."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return await action(session)
    finally:
        await engine.dispose()


async def _with_accounts(settings: Settings, action: Callable[[AccountsService], Awaitable[T]]) -> T:
    return await _in_transaction(settings, lambda session: action(AccountsService(session)))


@accounts_app.command("create")
def accounts_create(kind: AccountKind, slug: str, name: str, data_dir: DataDir = None) -> None:
    """Create a customer organization or a logistics partner (sites: `spareflow sites import`)."""
    from pydantic import ValidationError

    from services.api.schemas import AccountIn

    try:
        body = AccountIn(slug=slug, name=name)
    except ValidationError as exc:
        typer.echo(f"error: validation_error: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from exc
    account = _run(
        _with_accounts(
            _settings(data_dir),
            lambda accounts: accounts.create_account(_ACCOUNT_MODELS[kind], slug=body.slug, name=body.name),
        )
    )
    typer.echo(f"{kind} {account.slug} created: {account.id}")


@sites_app.command("import")
def sites_import(
    file: Annotated[
        Path, typer.Argument(help="JSON (a list of sites) or CSV (a row per printer)", exists=True)
    ],
    data_dir: DataDir = None,
) -> None:
    """Create or replace sites by slug from a file, all or nothing."""
    from services.factories.importer import ImportFileError, read_sites
    from services.fulfilment.unit_of_work import site_registry

    try:
        specs = read_sites(file)
    except ImportFileError as exc:
        typer.echo(f"error: {exc.code}: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = _settings(data_dir)

    result = _run(_in_transaction(settings, lambda session: site_registry(session).import_sites(specs)))
    created, updated = result.created, result.updated
    typer.echo(f"{len(created)} sites created, {len(updated)} updated")


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="admin, technician, factory or partner")],
    org: Annotated[str | None, typer.Option(help="Organization slug (technician keys)")] = None,
    site: Annotated[str | None, typer.Option(help="Site slug (factory keys)")] = None,
    partner: Annotated[str | None, typer.Option(help="Partner slug (partner keys)")] = None,
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    data_dir: DataDir = None,
) -> None:
    """Issue an API key. It is printed once; only its hash is stored."""

    async def issue(accounts: AccountsService) -> IssuedKey:
        owners = {
            "organization_id": (await accounts.account_by_slug(Organization, org)).id if org else None,
            "site_id": (await accounts.account_by_slug(Site, site)).id if site else None,
            "partner_id": (await accounts.account_by_slug(Partner, partner)).id if partner else None,
        }
        return await accounts.issue_key(role, name=name, **owners)

    issued = _run(_with_accounts(_settings(data_dir), issue))
    if as_json:
        typer.echo(json.dumps({"key_id": issued.key.key_id, "role": role, "token": issued.token}))
    else:
        typer.echo(f"{role} key {issued.key.key_id} (shown once, store it now):\n{issued.token}")


@orders_app.command("reoptimize")
def orders_reoptimize(
    apply: Annotated[
        bool, typer.Option("--apply", help="Carry out the moves (default: only show them)")
    ] = False,
    min_gain: Annotated[
        float | None, typer.Option(help="What a move must save (SPAREFLOW_REOPTIMIZE_MIN_GAIN)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    data_dir: DataDir = None,
) -> None:
    """Re-plan every order that has not started printing across all sites; show or apply the moves worth
    making. The worker runs the same every SPAREFLOW_REOPTIMIZE_INTERVAL_MINUTES."""
    from parts_catalog.storage import LocalBlobStore
    from services.fulfilment.unit_of_work import order_transaction
    from services.orders.reoptimize import reoptimize
    from services.routing.snapshot import SnapshotCache

    settings = _settings(data_dir)

    async def main() -> tuple[Any, list[Any]]:
        engine = create_engine(settings.resolved_database_url)
        sessions, snapshots = session_factory(engine), SnapshotCache(max_age_s=0)
        blobs = LocalBlobStore(settings.resolved_blob_dir)
        try:
            # No queue: print jobs of moved orders are picked up by the worker's reconciler.
            return await reoptimize(
                lambda: order_transaction(
                    sessions, None, blobs, archive_limits=settings.archive_limits, snapshots=snapshots
                ),
                min_gain=settings.reoptimize_min_gain if min_gain is None else min_gain,
                apply=apply,
                now=utcnow(),
            )
        finally:
            await engine.dispose()

    report, moves = _run(main())
    if as_json:
        typer.echo(
            json.dumps({**dataclasses.asdict(report), "moves": [dataclasses.asdict(m) for m in moves]})
        )
        return
    typer.echo(
        f"{report.orders} unstarted orders on {report.printers} printers; plan ({report.method}, "
        f"{report.solve_seconds:.2f} s) places {report.placed}; {report.proposed} moves worth making"
        + (f", {report.applied} applied" if apply else " (dry run: --apply to carry them out)")
    )
    for move in moves:
        typer.echo(
            f"  order {move.job_id}: printer {move.from_printer} -> {move.to_printer} (saves {move.gain:.1f})"
        )


@couriers_app.command("resume-local")
def couriers_resume_local(
    tracking_numbers: Annotated[
        list[str] | None, typer.Argument(help="Parcels to resume (default: every parked one)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Make the built-in courier report parked parcels again (after fixing why our API refused their
    tracking webhooks: the `local` partner's secret, say), attempts counted afresh."""
    from services.couriers.providers.local.gateway import LocalCourier

    settings = _settings(data_dir)

    async def main() -> list[str]:
        engine = create_engine(settings.resolved_database_url)
        courier = LocalCourier(session_factory(engine))
        try:
            return await courier.resume(tracking_numbers or ())
        finally:
            await courier.aclose()
            await engine.dispose()

    resumed = _run(main())
    typer.echo(f"{len(resumed)} parcels resumed" + "".join(f"\n  {number}" for number in resumed))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (SPAREFLOW_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SPAREFLOW_API_PORT)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    from services.api.app import create_app

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_level, settings.log_format)
    with redis_for(settings) as url:
        uvicorn.run(
            create_app(settings, redis_url=url),
            host=host or settings.api_host,
            port=settings.api_port if port is None else port,
            # Ours (configure_logging): uvicorn's loggers go through it, and the API writes its own access
            # line with the request and order ids.
            log_config=None,
            access_log=False,
        )


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit once the queue is empty")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 0 if this host's worker checked in with Redis lately, else 1 (a liveness probe)",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the arq worker (starts an embedded Redis when SPAREFLOW_REDIS_URL is unset)."""
    from services.workers.leased import check_health
    from services.workers.settings import build_worker

    settings = _settings(data_dir)
    if check:
        if not settings.redis_url:
            typer.echo(
                "error: --check needs SPAREFLOW_REDIS_URL (an embedded Redis lives with its worker)", err=True
            )
            raise typer.Exit(2)
        raise typer.Exit(0 if asyncio.run(check_health(settings.redis_url, settings.queue_name)) else 1)
    configure_logging(settings.log_level, settings.log_format)
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.api_host)

    async def main(redis_url: str) -> None:
        w = build_worker(settings, redis_url, burst=burst)
        try:
            await w.async_run()
        finally:
            await w.close()

    with redis_for(settings) as url:
        _run(main(url))


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="STL, OBJ or 3MF files", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document")] = False,
    repair_to: Annotated[
        Path | None,
        typer.Option(
            "--repair", help="Write the repaired model here (a directory when checking several files)"
        ),
    ] = None,
    units: Annotated[
        Unit | None, typer.Option(help="What the files' numbers mean (default: their own, or mm)")
    ] = None,
) -> None:
    """Check (and optionally repair) model files locally, without a server; exit 1 if any is unprintable."""
    from services.local_check import check_files

    settings = Settings()
    results = check_files(
        files,
        archive_limits=settings.archive_limits,
        max_faces=settings.max_model_faces,
        declared_unit=units,
        repair_to=repair_to,
    )
    if as_json:
        typer.echo(json.dumps({"files": [r.as_json() for r in results]}, sort_keys=True))
    else:
        for result in results:
            typer.echo(result.summary())
    if not all(r.printable for r in results):
        raise typer.Exit(1)


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON summary line")] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the whole platform on embedded defaults with a generated catalog, and report what happened."""
    from services.demo.run import run_demo

    settings = _settings(data_dir)
    with redis_for(settings) as url:
        summary = _run(run_demo(settings, redis_url=url, echo=None if as_json else typer.echo))
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))


def main() -> None:
    app()
