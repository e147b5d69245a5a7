"""atwill apply / atwill export: the cloud's projects, users, flavors, images, networks,
routers and security groups as one declarative file (docs/apply.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ..core import profile as profiles
from ..core.profile_plan import plan, summary
from .apply_api import Api, cloud_config
from .apply_read import read
from .apply_steps import Executor
from .options import StateDir, console

Cloud = Annotated[str, typer.Option("--os-cloud", envvar="OS_CLOUD",
                                    help="The cloud of clouds.yaml to act on (an admin's).")]


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
    app.command("export")(export)


def apply(path: Path = typer.Argument(..., help="The profile (cloud.yaml)."),
          dry_run: bool = typer.Option(False, "--dry-run",
                                       help="Print the plan; change nothing."),
          cloud: Cloud = "atwill", state_dir: StateDir = None) -> None:
    """Make the cloud match a profile: print the plan, then carry it out (idempotent)."""
    try:
        wanted = profiles.load(path.read_text(), str(path))
    except OSError as err:
        raise profiles.ProfileError(f"{path}: {err.strerror}") from None
    api = Api(cloud_config(cloud, state_dir))
    try:
        current = read(api, with_quotas=any(
            "quotas" in p for p in wanted.present["projects"].values()))
        steps = plan(wanted, current)
        if not steps:
            _say(f"No changes: the cloud matches {path}.")
            return
        _say(f"Plan: {summary(steps)}.")
        for step in steps:
            _say(f"  {step.describe()}")
        if dry_run:
            return
        Executor(api, current, path.parent, _say).run(steps)
        _say(f"Applied: {summary(steps)}.")
    finally:
        api.close()


def _say(line: str) -> None:
    """One line as it is: no markup read in names or paths, never wrapped (scripts and
    tests read these lines whole, whatever the terminal's width)."""
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def export(output: Path = typer.Option(None, "--output", "-o",
                                       help="Write here instead of standard output."),
           cloud: Cloud = "atwill", state_dir: StateDir = None) -> None:
    """Write the cloud as a profile: `atwill apply` of it changes nothing."""
    api = Api(cloud_config(cloud, state_dir))
    try:
        text = yaml.safe_dump(exported(read(api)), sort_keys=False, default_flow_style=None,
                              width=100)
    finally:
        api.close()
    if output:
        output.write_text(text)
        _say(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


def _bare(entry: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: _clean(v) for k, v in entry.items() if not k.startswith("_") and k not in drop}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def exported(state: profiles.State) -> dict[str, Any]:
    """A State as the profile file holds it: subnets inside their networks."""
    subnets: dict[str, list[dict[str, Any]]] = {}
    for entry in sorted(state["subnets"].values(), key=lambda e: e["name"]):
        net = f"{entry['project']}/{entry['network']}"
        subnets.setdefault(net, []).append(_bare(entry, "project", "network"))
    networks = []
    for key, entry in sorted(state["networks"].items()):
        networks.append({**_bare(entry), **({"subnets": subnets[key]} if key in subnets
                                            else {})})
    out: dict[str, Any] = {"version": 1}
    for kind in profiles.KINDS:
        if kind == "subnets":
            continue
        items = networks if kind == "networks" else [
            _bare(e) for _, e in sorted(state[kind].items())]
        # An image never uploaded has no formats yet, a zone may name no HA policy and
        # have no other metadata: say nothing of them.
        if kind in ("images", "availability_zones"):
            items = [{k: v for k, v in i.items() if v is not None and v != {}}
                     for i in items]
        if items:
            out[kind] = items
    return out
