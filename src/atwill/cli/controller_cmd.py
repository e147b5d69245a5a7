"""atwill init / serve: bootstrap and run the controller (`up` is in up.py)."""

from __future__ import annotations

import dataclasses
import logging
import math
import ssl
import sys
from collections.abc import Callable
from types import FrameType
from typing import Annotated, Any

import typer

from ..config import Settings
from .options import (
    DatabaseUrl,
    Host,
    Insecure,
    Overlay,
    Port,
    PublicHost,
    StateDir,
    console,
    err,
    settings,
)

Workers = Annotated[int | None, typer.Option(
    "--workers", min=0, max=256, help="Processes serving the API over one socket (default: "
    "workers in atwill.yaml, else one per core; 0: one per core).")]


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("serve")(serve)
    from . import controller_bundle

    app.add_typer(controller_bundle.app, name="controller")


def _settings(state_dir, database_url, host, port, public_host, insecure,
              overlay=None, workers=None) -> Settings:
    return settings(state_dir, insecure, database_url=database_url, listen_host=host,
                    port=port, public_host=public_host, overlay=overlay, workers=workers)


def _initialise(conf: Settings) -> None:
    from ..controller import state  # the controller's imports: not for `atwill join`

    changes = state.initialise(conf)
    if not changes:
        console.print(f"{conf.state_dir} is already initialised; nothing changed.")
    for change in changes:
        console.print(f"  {change}", highlight=False)


def init(state_dir: StateDir = None, database_url: DatabaseUrl = None, host: Host = None,
         port: Port = None, public_host: PublicHost = None, insecure_http: Insecure = False,
         overlay: Overlay = None) -> None:
    """Create (or complete) the state directory: database, keys, CA, admin, catalog."""
    from .controller_bundle import refuse_added

    refuse_added(state_dir)
    _initialise(_settings(state_dir, database_url, host, port, public_host, insecure_http,
                          overlay))


def serve(state_dir: StateDir = None, database_url: DatabaseUrl = None, host: Host = None,
          port: Port = None, public_host: PublicHost = None, insecure_http: Insecure = False,
          workers: Workers = None) -> None:
    """Run the controller on an initialised state directory."""
    run(_settings(state_dir, database_url, host, port, public_host, insecure_http,
                  workers=workers))


def per_worker_limits(conf: Settings, workers: int) -> Settings:
    """The login throttles each worker keeps in its own memory, cut to its share: the
    kernel spreads a client's connections over the workers (SO_REUSEPORT), so together
    they allow about what the settings say, not workers times as much."""
    return dataclasses.replace(
        conf, login_rate=conf.login_rate / workers,
        login_burst=max(1, math.ceil(conf.login_burst / workers)),
        password_checks=max(1, conf.password_checks // workers))


def run(conf: Settings, on_exit: Callable[[], None] | None = None,
        graceful: float | None = None) -> None:
    """Serve until a signal; on_exit runs at the signal, graceful bounds the wait for
    requests still running (None: as long as they take)."""
    from ..controller import listen
    from ..controller.keys import initialised
    from ..logs import setup_logging
    from . import keys

    setup_logging(conf.log_level)
    if not initialised(conf.path("fernet-keys")):  # the key files, or imported
        console.print(f"[red]{conf.state_dir} is not initialised; run 'atwill init'.[/red]")
        raise typer.Exit(1)
    workers = conf.effective_workers
    if workers > 1:
        _share_metrics(conf)
        conf = per_worker_limits(conf, workers)
    keys.prepare(conf)  # a wrong CA key is one line here, not a worker's traceback
    try:  # bound before saying "listening", so a taken port is the only line printed
        # Several workers: a set of sockets each on the same port (controller/prefork.py).
        slots = [listen.sockets(conf, reuse_port=workers > 1) for _ in range(workers)]
    except OSError as error:
        err.print(f"[red]cannot listen on {conf.listen_host}:{conf.port}:[/red] "
                  f"{error.strerror or error}", highlight=False)
        raise typer.Exit(1) from None
    logging.getLogger("atwill").info("controller listening on %s (state %s, %d worker%s)",
                                     conf.public_url, conf.state_dir, workers,
                                     "" if workers == 1 else "s")
    sys.stdout.flush()
    if workers == 1:
        _serve(conf, slots[0], graceful, on_exit, housekeeping=True)
        return
    from ..controller.app import clean_up
    from ..controller.context import Controller
    from ..controller.prefork import Prefork

    # Once, before any worker serves: afterwards an upload may be in flight in one.
    ctl = Controller.from_settings(conf)
    try:
        clean_up(ctl)
    finally:
        ctl.db.dispose()  # no connection crosses the fork
    def serve_slot(slot: int) -> None:
        for other in slots[:slot] + slots[slot + 1:]:
            for sock in other:
                sock.close()
        _serve(conf, slots[slot], graceful, None, housekeeping=False)

    status = Prefork(workers, serve_slot, on_exit).run()
    if status:
        raise typer.Exit(status)


def _share_metrics(conf: Settings) -> None:
    """prometheus_client's multiprocess mode for the workers (controller/metrics.py): its
    directory, emptied of a previous run's counts, named before any worker imports it."""
    import datetime as dt
    import os
    import shutil

    if "prometheus_client" in sys.modules:  # too late: its mode is chosen at import
        logging.getLogger("atwill").warning("/metrics counts per worker: prometheus_client "
                                            "was imported before the workers")
        return
    shared = conf.path("prometheus-multiproc")
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    os.environ["ATWILL_METRICS_SINCE"] = now.isoformat()


def _tls(conf: Settings) -> dict[str, Any]:
    if not conf.tls:
        return {}
    from ..controller.peercert import PeerCertProtocol

    # Client certificates are optional at the TLS layer (OpenStack clients have none)
    # and required by the cluster API's agent calls, which read them per request.
    return {"ssl_certfile": str(conf.path("pki", "controller.pem")),
            "ssl_keyfile": str(conf.path("pki", "controller-key.pem")),
            "ssl_ca_certs": str(conf.path("pki", "ca.pem")),
            "ssl_cert_reqs": ssl.CERT_OPTIONAL, "http": PeerCertProtocol}


def _serve(conf: Settings, sockets: list, graceful: float | None,
           on_exit: Callable[[], None] | None, housekeeping: bool) -> None:
    """One process serving the app on the sockets until a signal."""
    import uvicorn

    from ..controller.app import create_app

    # No proxy_headers: uvicorn would otherwise take a client's address from
    # X-Forwarded-For when the connection comes from 127.0.0.1, and the login rate
    # limit is keyed on that address.
    config = uvicorn.Config(create_app(conf, housekeeping=housekeeping), access_log=False,
                            log_config=None, server_header=False, proxy_headers=False,
                            timeout_graceful_shutdown=graceful, **_tls(conf))
    server = uvicorn.Server(config)
    if on_exit is not None:
        handle_exit = server.handle_exit

        def exiting(sig: int, frame: FrameType | None) -> None:
            on_exit()
            handle_exit(sig, frame)

        server.handle_exit = exiting  # type: ignore[method-assign]
    server.run(sockets=sockets)
