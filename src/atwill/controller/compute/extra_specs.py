"""/flavors/{id}/os-extra_specs: any string key (hw:*, pci_passthrough:alias, ...).

From microversion 2.86 keys and values are validated as Nova does (core/extra_spec_rules);
below it any well-formed key and value is stored, as Nova stores them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from ...core import extra_spec_rules
from ...core import flavors as rules
from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.compute import Flavor, FlavorExtraSpec
from ..service import authorize, caller, controller, json_body
from .common import api_version
from .flavor_shape import get_flavor

router = APIRouter()
PATH = "/v2.1/flavors/{flavor_id}/os-extra_specs"


@router.get(PATH)
def extra_specs_get(flavor_id: str, request: Request,
                    creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:flavor_extra_specs:index")
    with controller(request).db.session() as session:
        return {"extra_specs": get_flavor(session, creds, flavor_id).specs}


@router.post(PATH)
def extra_specs_post(flavor_id: str, request: Request, body: dict = Depends(json_body),
                     creds: Credentials = Depends(caller),
                     version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:flavor_extra_specs:create")
    specs = _parse(body.get("extra_specs"), version)
    with controller(request).db.session() as session:
        flavor = get_flavor(session, creds, flavor_id)
        for key, value in specs.items():
            _store(flavor, key, value)
    return {"extra_specs": specs}


@router.get(PATH + "/{key}")
def extra_spec_get(flavor_id: str, key: str, request: Request,
                   creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:flavor_extra_specs:show")
    with controller(request).db.session() as session:
        specs = get_flavor(session, creds, flavor_id).specs
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return {key: specs[key]}


@router.put(PATH + "/{key}")
def extra_spec_put(flavor_id: str, key: str, request: Request,
                   body: dict = Depends(json_body), creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:flavor_extra_specs:update")
    if list(body) != [key]:
        raise BadRequest("Request body and URI mismatch: the body must hold exactly the "
                         "key named in the URI.")
    specs = _parse(body, version)
    with controller(request).db.session() as session:
        _store(get_flavor(session, creds, flavor_id), key, specs[key])
    return specs


@router.delete(PATH + "/{key}")
def extra_spec_delete(flavor_id: str, key: str, request: Request,
                      creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "compute:flavor_extra_specs:delete")
    with controller(request).db.session() as session:
        flavor = get_flavor(session, creds, flavor_id)
        spec = session.scalar(select(FlavorExtraSpec).where(
            FlavorExtraSpec.flavor_id == flavor.id, FlavorExtraSpec.key == key))
        if spec is None:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        flavor.extra_specs.remove(spec)
    # Nova answers 200 with no body at all; Tempest's schema refuses even "{}".
    return Response(status_code=200)


def _parse(specs: object, version: Version) -> dict[str, str]:
    try:
        parsed = rules.parse_specs(specs)
    except rules.InvalidFlavor as err:
        raise BadRequest(str(err)) from None
    if version >= "2.86":
        for key, value in parsed.items():
            extra_spec_rules.validate(key, value)
    return parsed


def _store(flavor: Flavor, key: str, value: str) -> None:
    for spec in flavor.extra_specs:
        if spec.key == key:
            spec.value = value
            return
    flavor.extra_specs.append(FlavorExtraSpec(key=key, value=value))
