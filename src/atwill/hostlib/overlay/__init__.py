"""The encrypted overlay between nodes and the controller: WireGuard, or OpenVPN over TCP/UDP."""
