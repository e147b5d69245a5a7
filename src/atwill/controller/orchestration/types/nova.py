"""OS::Nova:: types, made through atwill's compute API as the stack's owner."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from ..services import Api, ResourceFailure
from .base import Made, Prop, ResourceType, Scope

C = "/compute/v2.1"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


class KeyPair(ResourceType):
    name = "OS::Nova::KeyPair"
    properties = {"name": Prop("string", required=True), "public_key": Prop("string"),
                  "save_private_key": Prop("boolean", default=False),
                  "type": Prop("string", allowed=("ssh", "x509")), "user": Prop("string")}
    attributes = {"public_key": "The public key.", "private_key": "The private key if it "
                  "has been saved."}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body = {"name": props["name"]}
        if props.get("public_key"):
            body["public_key"] = props["public_key"]
        if props.get("type"):
            body["type"] = props["type"]
        made = (await api.post(f"{C}/os-keypairs", {"keypair": body},
                               headers=mv("2.2")))["keypair"]
        data = {"public_key": made["public_key"], "private_key": ""}
        if props.get("save_private_key"):
            data["private_key"] = made.get("private_key", "")
        return Made(made["name"], data)

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{C}/os-keypairs/{made.physical_id}")


class Flavor(ResourceType):
    name = "OS::Nova::Flavor"
    properties = {"name": Prop("string"), "ram": Prop("integer", required=True),
                  "vcpus": Prop("integer", default=1), "disk": Prop("integer", default=0),
                  "swap": Prop("integer", default=0), "ephemeral": Prop("integer", default=0),
                  "rxtx_factor": Prop("number", default=1.0),
                  "is_public": Prop("boolean", default=True), "flavorid": Prop("string"),
                  "extra_specs": Prop("map", update_allowed=True),
                  "tenants": Prop("list", default=[])}
    attributes = {"extra_specs": "Extra specs of the flavor.", "is_public": "Public or not."}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body = {"name": props.get("name") or f"{scope.stack_name}-{scope.resource_name}",
                "ram": props["ram"], "vcpus": props["vcpus"], "disk": props["disk"],
                "swap": props["swap"], "OS-FLV-EXT-DATA:ephemeral": props["ephemeral"],
                "rxtx_factor": props["rxtx_factor"],
                "os-flavor-access:is_public": props["is_public"], "id": props.get("flavorid")}
        made = (await api.post(f"{C}/flavors", {"flavor": body}))["flavor"]
        if props.get("extra_specs"):
            await api.post(f"{C}/flavors/{made['id']}/os-extra_specs",
                           {"extra_specs": props["extra_specs"]})
        return Made(made["id"], {"is_public": props["is_public"],
                                 "extra_specs": props.get("extra_specs") or {}})

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{C}/flavors/{made.physical_id}")


class ServerGroup(ResourceType):
    name = "OS::Nova::ServerGroup"
    properties = {"name": Prop("string"), "policies": Prop("list", default=["all-members"]),
                  "rules": Prop("map")}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body = {"name": props.get("name") or f"{scope.stack_name}-{scope.resource_name}",
                "policies": props["policies"]}
        made = (await api.post(f"{C}/os-server-groups", {"server_group": body}))["server_group"]
        return Made(made["id"], made)

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{C}/os-server-groups/{made.physical_id}")


class Server(ResourceType):
    name = "OS::Nova::Server"
    properties = {
        "name": Prop("string", update_allowed=True),
        "image": Prop("string", update_allowed=True),
        "flavor": Prop("string", required=True, update_allowed=True),
        "key_name": Prop("string"), "networks": Prop("list", default=[]),
        "user_data": Prop("string", default="", update_allowed=True),
        "user_data_format": Prop("string", default="HEAT_CFNTOOLS",
                                 allowed=("HEAT_CFNTOOLS", "RAW", "SOFTWARE_CONFIG")),
        "metadata": Prop("map", update_allowed=True), "scheduler_hints": Prop("map"),
        "security_groups": Prop("list", default=[]), "availability_zone": Prop("string"),
        "config_drive": Prop("boolean"), "block_device_mapping_v2": Prop("list"),
        "admin_pass": Prop("string"), "software_config_transport": Prop("string"),
        # Heat's defaults: a new flavor resizes the server (confirmed once VERIFY_RESIZE),
        # a new image rebuilds it, new user_data replaces it.
        "flavor_update_policy": Prop("string", default="RESIZE", update_allowed=True,
                                     allowed=("RESIZE", "REPLACE")),
        "image_update_policy": Prop("string", default="REBUILD", update_allowed=True,
                                    allowed=("REBUILD", "REPLACE",
                                             "REBUILD_PRESERVE_EPHEMERAL")),
        "user_data_update_policy": Prop("string", default="REPLACE", update_allowed=True,
                                        allowed=("REPLACE", "IGNORE")),
    }
    attributes = {k: k for k in ("first_address", "addresses", "networks", "name",
                                 "instance_name", "accessIPv4", "accessIPv6",
                                 "console_urls", "status")}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body: dict[str, Any] = {
            "name": props.get("name") or f"{scope.stack_name}-{scope.resource_name}",
            "flavorRef": await _flavor(api, str(props["flavor"]))}
        if props.get("image"):
            body["imageRef"] = await _image(api, str(props["image"]))
        for key, target in (("key_name", "key_name"), ("metadata", "metadata"),
                            ("availability_zone", "availability_zone"),
                            ("config_drive", "config_drive"), ("admin_pass", "adminPass"),
                            ("block_device_mapping_v2", "block_device_mapping_v2")):
            if props.get(key) is not None:
                body[target] = props[key]
        user_data = scope.configs.get(str(props["user_data"]), str(props["user_data"]))
        if user_data:
            body["user_data"] = base64.b64encode(user_data.encode()).decode()
        body["networks"] = [await _network(api, n) for n in props["networks"]] or "auto"
        if props["security_groups"]:
            body["security_groups"] = [{"name": str(g)} for g in props["security_groups"]]
        wrapper = {"server": body}
        if props.get("scheduler_hints"):
            wrapper["os:scheduler_hints"] = props["scheduler_hints"]
        made = (await api.post(f"{C}/servers", wrapper, headers=mv("2.37")))["server"]
        return Made(made["id"], {"name": body["name"]})

    async def ready(self, api: Api, made: Made) -> bool:
        server = (await api.get(f"{C}/servers/{made.physical_id}", headers=mv("2.37")))[
            "server"]
        if server["status"] == "ERROR":
            fault = server.get("fault") or {}
            raise ResourceFailure("ResourceInError", f'Went to status ERROR due to "Message: '
                                  f'{fault.get("message", "Unknown")}, Code: '
                                  f'{fault.get("code", 500)}"')
        if server["status"] != "ACTIVE":
            return False
        made.data.update(_server_attributes(server))
        return True

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{C}/servers/{made.physical_id}")

    async def deleted(self, api: Api, made: Made) -> bool:
        return await api.call("GET", f"{C}/servers/{made.physical_id}", ok_missing=True) is None

    def replaces(self, props: dict[str, Any], changed: set[str]) -> bool:
        return ("flavor" in changed and props.get("flavor_update_policy") == "REPLACE") or (
            "image" in changed and props.get("image_update_policy") == "REPLACE") or (
            "user_data" in changed and props.get("user_data_update_policy") != "IGNORE") or (
            "image" in changed and not props.get("image"))

    async def update(self, api: Api, made: Made, props: dict[str, Any],
                     changed: set[str], scope: Scope) -> Made:
        data = dict(made.data)
        if "flavor" in changed:
            await _resize(api, made.physical_id, str(props["flavor"]))
        if "image" in changed:
            await _rebuild(api, made.physical_id, str(props["image"]),
                           props.get("image_update_policy") == "REBUILD_PRESERVE_EPHEMERAL")
        if "name" in changed and props.get("name"):
            await api.put(f"{C}/servers/{made.physical_id}", {"server": {"name": props["name"]}})
            data["name"] = props["name"]
        if "metadata" in changed:
            await api.put(f"{C}/servers/{made.physical_id}/metadata",
                          {"metadata": props.get("metadata") or {}})
        return Made(made.physical_id, data)


async def _resize(api: Api, server_id: str, flavor: str) -> None:
    """Heat's RESIZE policy: resize, wait for VERIFY_RESIZE, confirm, wait for ACTIVE."""
    url = f"{C}/servers/{server_id}"
    await api.post(f"{url}/action", {"resize": {"flavorRef": await _flavor(api, flavor)}})
    await _until(api, url, {"RESIZE", "ACTIVE"}, "VERIFY_RESIZE",
                 f"Resizing to '{flavor}' failed, status '{{}}'")
    await api.post(f"{url}/action", {"confirmResize": None})
    await _until(api, url, {"VERIFY_RESIZE"}, "ACTIVE",
                 f"Confirm resize for server {server_id} failed, status '{{}}'")


async def _rebuild(api: Api, server_id: str, image: str, preserve: bool) -> None:
    """Heat's REBUILD policies: rebuild with the new image, wait for ACTIVE again."""
    url = f"{C}/servers/{server_id}"
    body: dict[str, Any] = {"imageRef": await _image(api, image)}
    if preserve:
        body["preserve_ephemeral"] = True
    await api.post(f"{url}/action", {"rebuild": body})
    await _until(api, url, {"REBUILD"}, "ACTIVE", "Rebuilding server failed, status '{}'")


async def _until(api: Api, url: str, waiting: set[str], done: str, failed: str) -> None:
    """Poll the server until status done; another status than waiting fails, as Heat."""
    pause = 0.1
    while True:
        status = (await api.get(url, headers=mv("2.37")))["server"]["status"]
        if status == done:
            return
        if status not in waiting:
            raise ResourceFailure("Error", failed.format(status))
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


def _server_attributes(server: dict[str, Any]) -> dict[str, Any]:
    addresses = server.get("addresses") or {}
    first = next((a["addr"] for addrs in addresses.values() for a in addrs), "")
    networks = {net: [a["addr"] for a in addrs] for net, addrs in addresses.items()}
    return {"name": server["name"], "addresses": addresses, "networks": networks,
            "first_address": first, "accessIPv4": server.get("accessIPv4", ""),
            "accessIPv6": server.get("accessIPv6", ""), "status": server["status"],
            "instance_name": server.get("OS-EXT-SRV-ATTR:instance_name", ""),
            "show": server}


async def _flavor(api: Api, ref: str) -> str:
    found = await api.call("GET", f"{C}/flavors/{ref}", ok_missing=True)
    if found:
        return found["flavor"]["id"]
    flavors = (await api.get(f"{C}/flavors"))["flavors"]
    match = [f["id"] for f in flavors if f["name"] == ref]
    if not match:
        raise ResourceFailure("NotFound", f"Flavor {ref} could not be found.")
    return match[0]


async def _image(api: Api, ref: str) -> str:
    found = await api.call("GET", f"/image/v2/images/{ref}", ok_missing=True)
    if found:
        return found["id"]
    images = (await api.client.get("/image/v2/images", params={"name": ref})).json()
    match = [i["id"] for i in images.get("images", [])]
    if len(match) != 1:
        raise ResourceFailure("NotFound" if not match else "PhysicalResourceNameAmbiguity",
                              f"Image {ref} could not be found." if not match else
                              f"Multiple physical resources were found with name ({ref}).")
    return match[0]


async def _network(api: Api, spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.get("port"):
        out["port"] = (await api.find("ports", str(spec["port"])))["id"]
    elif spec.get("network"):
        out["uuid"] = (await api.find("networks", str(spec["network"])))["id"]
    if spec.get("fixed_ip"):
        out["fixed_ip"] = spec["fixed_ip"]
    return out


NOVA_TYPES = (KeyPair(), Flavor(), ServerGroup(), Server())
