"""Fencing: per-node fence devices run through the real fence agents (fence-agents)."""
