"""Resource types: each maps a Heat type's properties onto calls of atwill's own APIs."""

from __future__ import annotations

from .base import Prop, ResourceType
from .cinder import CINDER_TYPES
from .group import ResourceGroup
from .heat import HEAT_TYPES
from .nested import NestedStack
from .neutron import NEUTRON_TYPES
from .nova import NOVA_TYPES
from .wait import WAIT_TYPES

REGISTRY: dict[str, ResourceType] = {t.name: t for t in (*HEAT_TYPES, *NEUTRON_TYPES,
                                                         *NOVA_TYPES, *WAIT_TYPES,
                                                         *CINDER_TYPES,
                                                         ResourceGroup(), NestedStack())}

__all__ = ["REGISTRY", "Prop", "ResourceType"]
