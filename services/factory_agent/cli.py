"""``spareflow factory-agent``: the agent as a command.

Registered in ``services/cli.py`` with ``app.command("factory-agent")(factory_agent)``.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Annotated, Literal

import typer

from services.factory_agent.agent import FactoryAgent
from services.factory_agent.client import FactoryApiClient, FactoryApiError
from services.factory_agent.journal import JournalUnreadable, StateDirLocked
from services.factory_agent.octoprint import OctoPrintHost
from services.factory_agent.print_hosts import PrintHost, PrintHostError
from services.factory_agent.simulated import SimulatedPrintHost


def factory_agent(
    api: Annotated[str, typer.Option("--api", help="The Spareflow API's base URL")],
    key: Annotated[str, typer.Option("--key", envvar="SPAREFLOW_FACTORY_KEY", help="The site's factory key")],
    printer_id: Annotated[str, typer.Option("--printer-id", help="The printer this agent prints for (UUID)")],
    print_host: Annotated[
        Literal["octoprint", "simulated"], typer.Option("--print-host", help="What drives the printer")
    ] = "simulated",
    octoprint_url: Annotated[str | None, typer.Option("--octoprint-url", help="OctoPrint's base URL")] = None,
    octoprint_key: Annotated[
        str | None,
        typer.Option("--octoprint-key", envvar="SPAREFLOW_OCTOPRINT_KEY", help="OctoPrint API key"),
    ] = None,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="The agent's journal and downloads; one agent per directory")
    ] = Path(".spareflow-agent"),
    materials: Annotated[
        list[str] | None, typer.Option("--material", help="A material loaded on the printer (repeatable)")
    ] = None,
    sim_speed: Annotated[
        float, typer.Option("--sim-speed", help="Simulated prints run this many times faster than estimated")
    ] = 1.0,
    sim_max_seconds: Annotated[
        float | None, typer.Option("--sim-max-seconds", help="No simulated print takes longer than this")
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", help="How often the print host is asked while printing")
    ] = 5.0,
) -> None:
    """Print the site's jobs: claim them from the API, print them on the print host, report back.

    Writes one JSON line per event to stdout.

    SIGTERM or Ctrl-C stops it after the request in flight. A print keeps running on the host; the next
    start of the agent picks it up again.
    """
    try:
        printer = uuid.UUID(printer_id)
    except ValueError as exc:
        raise typer.BadParameter("not a UUID", param_hint="--printer-id") from exc
    host: PrintHost
    if print_host == "octoprint":
        if not octoprint_url or not octoprint_key:
            raise typer.BadParameter(
                "--octoprint-url and --octoprint-key are needed with --print-host octoprint"
            )
        host = OctoPrintHost(octoprint_url, octoprint_key)
    else:
        host = SimulatedPrintHost(
            state_dir / "simulated-printer", speed=sim_speed, max_seconds=sim_max_seconds
        )
    client = FactoryApiClient(api, key)
    agent = FactoryAgent(
        client, host, printer_id=printer, materials=materials, state_dir=state_dir, poll_s=poll_seconds
    )
    try:
        asyncio.run(_run(agent, client, host))
    except asyncio.CancelledError as exc:
        raise typer.Exit(130) from exc  # 128 + SIGINT, as a shell reports an interrupted command
    except (StateDirLocked, JournalUnreadable, FactoryApiError, PrintHostError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


async def _run(agent: FactoryAgent, client: FactoryApiClient, host: PrintHost) -> None:
    stop = asyncio.Event()
    running = asyncio.current_task()
    assert running is not None

    def on_signal() -> None:
        if stop.is_set():
            running.cancel()  # a second signal: leave now; the journal reconciles on the next start
            return
        wait = f"a claim waits up to {agent.claim_wait_s:.0f} s"
        typer.echo(f"stopping after the request in flight ({wait}); again to quit now", err=True)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    try:
        await agent.run(stop)
    finally:
        await client.aclose()
        await host.aclose()
