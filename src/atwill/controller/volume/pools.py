"""/v3/scheduler-stats/get_pools: a pool per storage node (`openstack volume backend pool
list [--long]`), its capacity from the node's inventory (core/volume_pools)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select

from ...core import volume_pools
from ...core.policy import Credentials
from ...core.volume_placement import storage_of
from ..db.volume import Volume
from ..service import controller
from .common import require_admin, stamp, who
from .placement import allocated, storage_nodes

router = APIRouter()


@router.get("/v3/scheduler-stats/get_pools")
def get_pools(request: Request, creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "scheduler_extension:scheduler_stats:get_pools")
    detail = volume_pools.detail(request.query_params.get("detail"))
    name = request.query_params.get("name")
    with controller(request).db.session() as session:
        pools = [volume_pools.pool(
            n.name, storage_of(n.inventory) or {}, allocated(session, n.id),
            session.scalar(select(func.count()).select_from(Volume)
                           .where(Volume.node_id == n.id)) or 0,
            stamp(n.last_heartbeat), n.state == "up" and not n.forced_down, detail)
            for n in storage_nodes(session)]
    return {"pools": [p for p in pools if name in (None, p["name"])]}
