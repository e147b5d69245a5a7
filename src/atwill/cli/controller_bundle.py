"""atwill controller export-bundle / add: a second controller for the same cloud.

The first controller seals what every controller must share (controller/
ha_controllers_bundle.py); `add` on another machine makes a state directory from it,
with a TLS certificate of its own from the shared CA, on the same PostgreSQL. Then
`atwill serve` there serves the same cloud.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from . import controller_credentials
from .options import Host, Port, PublicHost, StateDir, console, err, settings

app = typer.Typer(help="Several controllers of one cloud (on one PostgreSQL).",
                  no_args_is_help=True)

PassphraseFile = Annotated[Path | None, typer.Option(
    "--passphrase-file", help="Read the bundle passphrase from this file (else "
    "$ATWILL_BUNDLE_PASSPHRASE, else a prompt).")]
PASSPHRASE_ENV = "ATWILL_BUNDLE_PASSPHRASE"


def _passphrase(path: Path | None, confirm: bool) -> str:
    if path is not None:
        return path.read_text().strip()
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    return typer.prompt("Bundle passphrase", hide_input=True, confirmation_prompt=confirm)


def _fail(error: Exception) -> None:
    err.print(f"[red]{error}[/red]", highlight=False)
    raise typer.Exit(1)


app.command("credentials")(controller_credentials.credentials)


@app.command("export-bundle")
def export_bundle(target: Annotated[Path, typer.Argument(help="The file to write (0600).")],
                  state_dir: StateDir = None, passphrase_file: PassphraseFile = None) -> None:
    """Seal this controller's shared keys and settings for another controller."""
    from ..controller import ha_controllers_bundle as bundle

    conf = settings(state_dir)
    try:
        content = bundle.collect(conf)
        bundle.write_new(target, bundle.seal(content, _passphrase(passphrase_file, True)))
    except bundle.BundleError as error:
        _fail(error)
    console.print(f"wrote {target} ({len(content['files'])} files): it holds the cloud's "
                  "keys; move it to the new controller's machine and delete it after "
                  "'atwill controller add'.", highlight=False)


@app.command("add")
def add(bundle_file: Annotated[Path, typer.Option("--bundle", help="From export-bundle.")],
        state_dir: StateDir = None, host: Host = None, port: Port = None,
        public_host: PublicHost = None, passphrase_file: PassphraseFile = None) -> None:
    """Make this machine's state directory from a bundle: another controller of the cloud."""
    from .. import pki
    from ..controller import ha_controllers_bundle as bundle
    from ..controller.state import admin_password, tls_hosts, write_credentials

    directory = settings(state_dir).state_dir
    try:
        content = bundle.unseal(bundle.read_private(bundle_file),
                                _passphrase(passphrase_file, False))
        changes = bundle.install(content, directory, {"listen_host": host, "port": port,
                                                      "public_host": public_host})
    except bundle.BundleError as error:
        _fail(error)
    conf = settings(directory)
    urls = bundle.join_urls(conf.controller_urls, conf.public_url)
    changes += _save_urls(conf, urls)
    changes += _own_overlay_peer(settings(directory))
    conf = settings(directory)
    hosts = [*tls_hosts(conf), *filter(None, [bundle.cloud_host(directory)])]
    if pki.issue_server_cert(conf.path("pki"), hosts):
        changes.append("issued this controller's TLS certificate from the cloud's CA")
    changes += write_credentials(conf, admin_password(conf))
    for change in changes:
        console.print(f"  {change}", highlight=False)
    console.print(f"Controllers: {urls}. Run 'atwill serve' here: this controller "
                  "registers itself in the shared database and every node learns it "
                  "within seconds (nothing to change on the others).", highlight=False)


def _save_urls(conf, urls: str) -> list[str]:  # noqa: ANN001 - config.Settings
    import dataclasses

    from .. import config

    config.save(dataclasses.replace(conf, controller_urls=urls), ["controller_urls"])
    return [f"controller_urls: {urls}"]


def _own_overlay_peer(conf) -> list[str]:  # noqa: ANN001 - config.Settings
    """WireGuard: this controller's own key and a free controller address of the overlay."""
    import dataclasses

    from .. import config
    from ..controller.cluster.controller_peer import claim_address, ensure_key

    if conf.overlay != "wireguard":
        return []
    address, warning = claim_address(conf)
    if warning:
        err.print(f"[yellow]{warning}: {address}; set overlay_address in atwill.yaml if "
                  "another controller holds it[/yellow]", highlight=False)
    config.save(dataclasses.replace(conf, overlay_address=address), ["overlay_address"])
    ensure_key(conf.state_dir)
    return [f"overlay_address: {address} (this controller's WireGuard peer, its own key)"]


def refuse_added(state_dir: Path | None) -> None:
    """`init` on a controller made by `add` would move the shared catalog to its URL."""
    from ..controller.ha_controllers_bundle import ADDED_FILE

    directory = settings(state_dir).state_dir
    if (directory / ADDED_FILE).exists():
        err.print(f"[red]{directory} is a controller added from a bundle: 'atwill init' "
                  "would point the cloud's catalog at it. Run 'atwill serve'; to make "
                  "another cloud, use an empty --state-dir.[/red]", highlight=False)
        raise typer.Exit(1)
