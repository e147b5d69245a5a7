"""The lab: many hosts on one machine, as network namespaces joined by an emulated WAN."""

from .cluster import LabError
from .lab import Lab

__all__ = ["Lab", "LabError"]
