"""atwill bench: benchmarks (see benchmarks/)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks.")


@app.command("api")
def api(rounds: int = typer.Option(2000, help="Requests per measurement."),
        image_mb: int = typer.Option(256, help="Size of the image to move."),
        workers: str = typer.Option("1,2", help="Controller worker counts to measure, "
                                                "comma separated (ratios against the first)."),
        image_only: bool = typer.Option(False, "--image-only",
                                        help="Only the image transfer figures (first count)."),
        keystone: bool = typer.Option(False, "--keystone",
                                      help="Also a real Keystone from PyPI (its own venv, "
                                           "cached), same load, last worker count: "
                                           "atwill / Keystone ratios.")
        ) -> None:
    """Token issue/validation rates, image transfer ratio, flavor list rate, memory."""
    try:
        counts = tuple(int(n) for n in workers.split(","))
    except ValueError:
        raise typer.BadParameter("workers: comma-separated whole numbers, e.g. 1,2") from None
    if not counts or any(n < 1 or n > 64 for n in counts):
        raise typer.BadParameter("workers: each between 1 and 64")
    from ..bench.api import main

    main(rounds, image_mb, counts, image_only, keystone)


@app.command("cluster")
def cluster(joins: int = typer.Option(5, help="Rejoins timed per WAN setting."),
            seconds: int = typer.Option(5, help="Duration of each iperf3 run."),
            rounds: int = typer.Option(3, help="iperf3 runs per path; the best is kept."),
            delay: str = typer.Option("50ms", help="WAN delay per access link, second run."),
            json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
            ) -> None:
    """Join latency (0 ms and DELAY WAN) and overlay throughput against hand-made tunnels."""
    import os

    if os.geteuid() != 0:
        raise typer.BadParameter("needs root: it builds labs (namespaces, tunnels)")
    from ..bench.cluster import main

    results = main(joins, seconds, rounds, delay)
    if json_out:
        import json

        print(json.dumps(results, indent=1))


@app.command("scheduler")
def scheduler_bench(nodes: int = typer.Option(1000, help="Simulated nodes in the database."),
                    placements: int = typer.Option(2000, help="Placements to time."),
                    database_url: str = typer.Option(None, help="PostgreSQL URL allowed to "
                                                     "create databases (default: SQLite)."),
                    workers: int = typer.Option(1, help="Processes placing at once."),
                    orm_insert: bool = typer.Option(False, help="Insert each instance with "
                                                    "the ORM's flush, as the API does.")
                    ) -> None:
    """Placements per second, with claims, against simulated nodes; checks no overbooking."""
    from ..bench.scheduler import main

    main(nodes, placements, database_url, workers, orm_insert)


@app.command("fleet")
def fleet(nodes: int = typer.Option(50, help="SIMULATED nodes (500 and 2000 for the README)."),
          seconds: float = typer.Option(10.0, help="Length of each measured phase."),
          concerned: int = typer.Option(50, help="Nodes with ports in the changed group."),
          workers: int = typer.Option(1, help="Controller worker processes."),
          database_url: str = typer.Option(None, help="PostgreSQL URL allowed to create "
                                           "databases (default $ATWILL_TEST_PG_URL)."),
          json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON."),
          compare: str = typer.Option("heartbeat", help="before/after: heartbeat (full / "
                                      "lean path) or revisions (one / per node).")
          ) -> None:
    """SIMULATED nodes at 1 Hz on PostgreSQL: controller CPU/heartbeat, p99, change fan-out."""
    from ..bench.fleet import main

    results = main(nodes, seconds, concerned, workers, database_url, compare)
    if json_out:
        _print_json(results)


@app.command("creates")
def creates(nodes: int = typer.Option(50, min=1, max=5000, help="SIMULATED nodes."),
            count: int = typer.Option(1000, "--creates", min=1, max=100000,
                                      help="Servers to create at most."),
            seconds: float = typer.Option(60.0, min=1, max=3600,
                                          help="Creates stop after this long."),
            connections: int = typer.Option(8, min=1, max=256,
                                            help="Concurrent client connections."),
            workers: int = typer.Option(1, min=1, max=64, help="Controller worker processes."),
            database_url: str = typer.Option(None, help="PostgreSQL URL allowed to create "
                                             "databases (default: SQLite)."),
            network: bool = typer.Option(True, help="Each server on a network with a "
                                         "subnet (a port each); --no-network: \"none\"."),
            projects: int = typer.Option(1, min=1, max=64, help="Projects creating at once "
                                         "(connections spread over them)."),
            json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
            ) -> None:
    """Servers created per second through the compute API against SIMULATED nodes that
    report them running: accepted/s, ACTIVE/s, latencies, against a flavor list's rate."""
    from ..bench.creates import main

    results = main(nodes, count, seconds, connections, workers, database_url,
                   network=network, projects=projects)
    if json_out:
        _print_json(results)


def _needs_root() -> None:
    import os

    if os.geteuid() != 0:
        raise typer.BadParameter("needs root: it builds labs (namespaces, tunnels)")


def _print_json(results: dict) -> None:
    import json

    print(json.dumps(results, indent=1))


@app.command("network")
def network(seconds: int = typer.Option(5, help="Duration of each iperf3 run."),
            rounds: int = typer.Option(3, help="iperf3 runs per path; the best is kept."),
            repeats: int = typer.Option(3, help="Ports created / rules changed, timed."),
            json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
            ) -> None:
    """Port-to-port throughput against the bare overlay, port plumbing, rule changes."""
    _needs_root()
    from ..bench.network import main

    results = main(seconds, rounds, repeats)
    if json_out:
        _print_json(results)


@app.command("instances")
def instances(repeats: int = typer.Option(3, help="Warm creates (and QEMU by hand), timed."),
              big_mb: int = typer.Option(200, help="Random cold-cache image, MB (0: none)."),
              json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
              ) -> None:
    """Server create -> ACTIVE against QEMU by hand; cold-cache image transfer rate."""
    _needs_root()
    from ..bench.instances import main

    results = main(repeats, big_mb)
    if json_out:
        _print_json(results)


@app.command("volumes")
def volumes(size_mb: int = typer.Option(256, min=16, max=8192, help="Volume size, MiB."),
            rounds: int = typer.Option(3, min=1, max=20, help="Runs per case; the best kept."),
            guest: bool = typer.Option(False, "--guest", help="dd inside a guest instead: a "
                                       "volume over a lab's overlay vs the guest's local disk."),
            guest_mib: int = typer.Option(64, min=8, max=512, help="--guest: MiB per "
                                          "sequential run."),
            small: int = typer.Option(1024, min=16, max=65536, help="--guest: 4 KiB requests "
                                      "per one-at-a-time run."),
            random: int = typer.Option(200, min=16, max=5000, help="--guest: 4 KiB requests "
                                       "(one dd each) per random run."),
            latency: bool = typer.Option(False, "--latency", help="Attach -> device present "
                                         "in QEMU, and a volume from a 1 GiB image vs "
                                         "qemu-img convert."),
            json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
            ) -> None:
    """Sequential MB/s and 4 KiB IOPS through a volume's NBD export (TLS-PSK) vs local;
    with --guest, in a guest over the overlay vs its local disk."""
    _needs_root()
    if latency:
        from ..bench.volumes_latency import main as latencies

        results = latencies(rounds)
    elif guest:
        from ..bench.volumes_guest import main as in_guest

        if small > guest_mib * 256:
            raise typer.BadParameter("--small: at most --guest-mib × 256 requests of 4 KiB")
        results = in_guest(guest_mib, small, random, rounds)
    else:
        from ..bench.volumes import main

        results = main(size_mb, rounds)
    if json_out:
        _print_json(results)


@app.command("ha")
def ha(sizes: str = typer.Option("1,10", help="Servers per power loss, comma separated."),
       repeats: int = typer.Option(3, min=1, max=20, help="Power losses per size."),
       lossy_seconds: float = typer.Option(90, min=10, max=900,
                                           help="Length of the lossy-link run."),
       budget: float = typer.Option(720, help="Seconds after which no repetition starts "
                                              "(each size keeps at least one)."),
       rounds: int = typer.Option(3, min=0, max=20, help="Partition/heal rounds sampled "
                                  "for double copies (0: none)."),
       before_after: bool = typer.Option(True, help="The largest size again with the peers' "
                                         "confirmation off, for a ratio."),
       json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
       ) -> None:
    """Power loss -> HA servers ACTIVE elsewhere (detection, fencing, rebuild); lossy link."""
    _needs_root()
    try:
        counts = tuple(int(n) for n in sizes.split(","))
    except ValueError:
        raise typer.BadParameter("sizes: comma-separated whole numbers, e.g. 1,10") from None
    if not counts or any(n < 1 or n > 20 for n in counts):
        raise typer.BadParameter("sizes: each between 1 and 20")
    from ..bench.ha import main

    results = main(counts, repeats, lossy_seconds, budget_s=budget, rounds=rounds,
                   before_after=before_after)
    if json_out:
        _print_json(results)


@app.command("dashboard")
def dashboard(instances: int = typer.Option(200, min=1, max=2000,
                                            help="Instances in the list (rows, no nodes)."),
              rounds: int = typer.Option(20, min=3, max=500, help="Page loads timed."),
              json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
              ) -> None:
    """Instance list page with N instances: server time against the JSON API list."""
    from ..bench.dashboard import main

    results = main(instances, rounds)
    if json_out:
        _print_json(results)


@app.command("scope")
def scope(rounds: int = typer.Option(30, min=3, max=1000, help="Requests timed per figure."),
          image_mb: int = typer.Option(64, min=1, max=2048, help="Size of the image moved."),
          delays: str = typer.Option("0,50", help="WAN delays (ms each way), comma separated."),
          json_out: bool = typer.Option(False, "--json", help="Also print the figures as JSON.")
          ) -> None:
    """X-Scope between two controllers: scoped image show vs direct, cross-cloud fetch vs
    local, for each WAN delay."""
    try:
        wanted = tuple(int(d) for d in delays.split(","))
    except ValueError:
        raise typer.BadParameter("delays: comma-separated milliseconds, e.g. 0,50") from None
    if not wanted or any(d < 0 or d > 1000 for d in wanted):
        raise typer.BadParameter("delays: each between 0 and 1000 ms")
    from ..bench.scope import main

    results = main(rounds, image_mb, wanted)
    if json_out:
        _print_json(results)


@app.command("migration")
def migration(sizes: str = typer.Option("256", help="Guest memory sizes, MiB, comma separated "
                                        "(an idle and a memory-dirtying guest each)."),
              budget: float = typer.Option(1500, min=60, max=7200, help="Seconds after "
                                           "which no further case starts."),
              json_out: bool = typer.Option(False, "--json", help="Also print the figures "
                                            "as JSON.")) -> None:
    """Live migration downtime, total time and bytes against the same migration by hand."""
    _needs_root()
    try:
        counts = tuple(int(n) for n in sizes.split(","))
    except ValueError:
        raise typer.BadParameter("sizes: comma-separated MiB, e.g. 256,1024") from None
    if not counts or any(n < 64 or n > 4096 for n in counts):
        raise typer.BadParameter("sizes: each between 64 and 4096 MiB")
    from ..bench.migration import main

    results = main(counts, budget)
    if json_out:
        _print_json(results)
