from pathlib import Path

from atwill.agent.net.dnsmasq import kept_leases

LEASES = ("1700000000 fa:16:3e:00:00:01 10.0.0.4 a *\n"
          "1700000000 fa:16:3e:00:00:02 10.0.0.5 b *\n")


def test_leases_of_ports_that_left_are_dropped(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    leases.write_text(LEASES)
    assert kept_leases(leases, "fa:16:3e:00:00:02,10.0.0.5,b\n") == \
        "1700000000 fa:16:3e:00:00:02 10.0.0.5 b *\n"
    # the same MAC with another address is stale too
    assert kept_leases(leases, "fa:16:3e:00:00:01,10.0.0.9,a\n"
                               "fa:16:3e:00:00:02,10.0.0.5,b\n") == \
        "1700000000 fa:16:3e:00:00:02 10.0.0.5 b *\n"


def test_nothing_to_drop(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    leases.write_text(LEASES)
    hosts = "fa:16:3e:00:00:01,10.0.0.4,a\nfa:16:3e:00:00:02,10.0.0.5,b\n"
    assert kept_leases(leases, hosts) is None
    assert kept_leases(tmp_path / "missing", hosts) is None
