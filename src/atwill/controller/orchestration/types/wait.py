"""OS::Heat::WaitConditionHandle and OS::Heat::WaitCondition: a stack waits for signals.

The handle's signal URL takes the handle's own token (X-Auth-Token), so a guest can signal
with the curl_cli attribute and no Keystone account, as with Heat's token signal transport.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from ..services import Api, ResourceFailure
from .base import Made, Prop, ResourceType, Scope

STATUSES = ("SUCCESS", "FAILURE")


def stack_path(project_id: str, stack_name: str, stack_id: str) -> str:
    return f"/orchestration/v1/{project_id}/stacks/{stack_name}/{stack_id}"


class WaitConditionHandle(ResourceType):
    name = "OS::Heat::WaitConditionHandle"
    properties = {"signal_transport": Prop("string", default="TOKEN_SIGNAL",
                                           allowed=("TOKEN_SIGNAL",))}
    attributes = {"token": "The token with which the handle's URL is signalled.",
                  "endpoint": "The URL to POST signals to.",
                  "curl_cli": "A curl command line that signals the handle.",
                  "signal": "The URL and token as a JSON map."}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        token = secrets.token_urlsafe(32)
        url = (f"{api.client.base_url}".rstrip("/") + stack_path(
            scope.project_id, scope.stack_name, scope.stack_id) +
            f"/resources/{scope.resource_name}/signal")
        curl = (f"curl -i -X POST -H 'X-Auth-Token: {token}' -H 'Content-Type: "
                f"application/json' -H 'Accept: application/json' {url}")
        return Made(str(uuid.uuid4()), {
            "token": token, "endpoint": url, "curl_cli": curl,
            "signal": {"url": url, "token": token}, "resource": scope.resource_name,
            "signals": []})

    def attribute(self, made: Made, name: str) -> Any:
        if name == "signal":
            return json.dumps(made.data.get("signal"))
        return super().attribute(made, name)


def normalised(body: Any, seen: int) -> dict[str, Any]:
    """A signal as Heat keeps it: missing fields filled in, status SUCCESS or FAILURE."""
    if not isinstance(body, dict):
        raise ValueError("Metadata format invalid")
    signal = {"reason": f"Signal {seen + 1} received", "data": None, "id": str(seen + 1),
              "status": "SUCCESS", **body}
    if signal["status"] not in STATUSES:
        raise ValueError("Metadata format invalid")
    return signal


class WaitCondition(ResourceType):
    name = "OS::Heat::WaitCondition"
    properties = {"handle": Prop("string", required=True),
                  "timeout": Prop("number", required=True, low=1, high=43200),
                  "count": Prop("integer", default=1, low=1, update_allowed=True)}
    attributes = {"data": "JSON of the signals' data, by their id."}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        path = stack_path(scope.project_id, scope.stack_name, scope.stack_id)
        listed = await api.get(f"{path}/resources")
        names = [r["resource_name"] for r in listed["resources"]
                 if r["physical_resource_id"] == props["handle"]]
        if not names:
            raise ResourceFailure("NotFound", f"The handle {props['handle']} is not a "
                                  "WaitConditionHandle of this stack.")
        return Made(str(uuid.uuid4()), {
            "handle": f"{path}/resources/{names[0]}", "count": int(props["count"]),
            "deadline": time.time() + float(props["timeout"]), "data": json.dumps({})})

    async def ready(self, api: Api, made: Made) -> bool:
        shown = await api.get(made.data["handle"])
        signals = shown["resource"]["attributes"].get("signals") or []
        failed = [s["reason"] for s in signals if s["status"] == "FAILURE"]
        if failed:
            raise ResourceFailure("WaitConditionFailure", ";".join(failed))
        good = [s for s in signals if s["status"] == "SUCCESS"]
        made.data["data"] = json.dumps({s["id"]: s["data"] for s in good})
        if len(good) >= made.data["count"]:
            return True
        if time.time() > made.data["deadline"]:
            received = f"{len(good)} of {made.data['count']} received"
            reasons = ";".join(s["reason"] for s in good)
            raise ResourceFailure("WaitConditionTimeout",
                                  f"{received} - {reasons}" if reasons else received)
        return False


WAIT_TYPES = (WaitConditionHandle(), WaitCondition())
