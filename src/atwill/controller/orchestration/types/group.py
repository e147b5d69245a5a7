"""OS::Heat::ResourceGroup: count copies of one resource definition, %index% filled in."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ....core.hot.errors import StackValidationFailed
from ..services import Api, ResourceFailure
from .base import Made, Prop, ResourceType, Scope


def _indexed(value: Any, var: str, index: int) -> Any:
    if isinstance(value, str):
        return value.replace(var, str(index))
    if isinstance(value, dict):
        return {k: _indexed(v, var, index) for k, v in value.items()}
    if isinstance(value, list):
        return [_indexed(v, var, index) for v in value]
    return value


MAX_MEMBERS = 1000
PARALLEL = 4  # members made at once, as the engine's own bound on a stack


class ResourceGroup(ResourceType):
    name = "OS::Heat::ResourceGroup"
    # Heat's max_resources_per_stack (1000) bounds a group too.
    properties = {"count": Prop("integer", default=1, low=0, high=MAX_MEMBERS),
                  "resource_def": Prop("map", required=True),
                  "index_var": Prop("string", default="%index%"),
                  "removal_policies": Prop("list", default=[])}
    attributes = {"refs": "The ids of the group's resources.",
                  "refs_map": "Index -> id of the group's resources.",
                  "removed_rsrc_list": "Resources removed by removal_policies."}

    def member_type(self, props: dict[str, Any]) -> ResourceType:
        from . import REGISTRY  # the registry holds this type too

        kind = (props.get("resource_def") or {}).get("type")
        if kind not in REGISTRY or kind == self.name:
            raise StackValidationFailed(f"The Resource Type ({kind}) could not be found.")
        return REGISTRY[kind]

    def check(self, resource: str, props: dict[str, Any], partial: bool = False) -> None:
        super().check(resource, props, partial)
        definition = props.get("resource_def")
        if isinstance(definition, dict) and isinstance(definition.get("type"), str):
            member = self.member_type(props)
            member.check(f"{resource}.resource_def", definition.get("properties") or {},
                         partial)

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        member = self.member_type(props)
        definition, var = props["resource_def"], props["index_var"]
        made: dict[str, Made] = {}

        limit = asyncio.Semaphore(PARALLEL)

        async def one(index: int) -> None:
            async with limit:
                await make(index)

        async def make(index: int) -> None:
            mprops = member.with_defaults(_indexed(definition.get("properties") or {},
                                                   var, index))
            mscope = Scope(scope.stack_name, scope.stack_id,
                           f"{scope.resource_name}-{index}", scope.configs)
            made[str(index)] = await member.create(api, mprops, mscope)
            while not await member.ready(api, made[str(index)]):
                await asyncio.sleep(0.5)

        try:
            await asyncio.gather(*(one(i) for i in range(int(props["count"]))))
        except (ResourceFailure, StackValidationFailed):
            await self._delete_members(api, member, made)
            raise
        return Made(str(uuid.uuid4()), {
            "type": definition["type"],
            "members": {i: {"id": m.physical_id, "ref": member.reference(m), "data": m.data}
                        for i, m in sorted(made.items(), key=lambda kv: int(kv[0]))}})

    async def _delete_members(self, api: Api, member: ResourceType,
                              made: dict[str, Made]) -> None:
        for m in made.values():
            await member.delete(api, m)
            while not await member.deleted(api, m):
                await asyncio.sleep(0.5)

    async def delete(self, api: Api, made: Made) -> None:
        member = self.member_type({"resource_def": {"type": made.data["type"]}})
        members = {i: Made(m["id"], m["data"]) for i, m in made.data["members"].items()}
        await self._delete_members(api, member, members)

    def attribute(self, made: Made, name: str) -> Any:
        members = made.data["members"]
        order = sorted(members, key=int)
        if name == "refs":
            return [members[i]["ref"] for i in order]
        if name == "refs_map":
            return {i: members[i]["ref"] for i in order}
        if name == "removed_rsrc_list":
            return []
        member = self.member_type({"resource_def": {"type": made.data["type"]}})
        if name.startswith("resource."):
            parts = name.split(".", 2)
            one = members.get(parts[1])
            if one is None:
                raise ResourceFailure("InvalidTemplateAttribute",
                                      f"The Referenced Attribute ({name}) is incorrect.")
            if len(parts) == 2:
                return one["ref"]
            return member.attribute(Made(one["id"], one["data"]), parts[2])
        return [member.attribute(Made(members[i]["id"], members[i]["data"]), name)
                for i in order]

    def reference(self, made: Made) -> Any:
        return made.physical_id
