"""Peer clouds: pairing, identity mapping, and the X-Scope that sends services to them."""
