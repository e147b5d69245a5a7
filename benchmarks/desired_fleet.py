"""`atwill bench fleet` comparing two source trees of the controller (the controller it
starts runs with PYTHONPATH=BEFORE, then AFTER: `git archive COMMIT src | tar -x -C DIR`
gives DIR/src), e.g. the commit before cluster/fleet_lists.py and the one that made it.

    ATWILL_TEST_PG_URL=... .venv/bin/python benchmarks/desired_fleet.py BEFORE/src AFTER/src \
        [NODES] [SECONDS] [--reversed]

--reversed measures AFTER first (the ratios stay after / before).
"""

from __future__ import annotations

import sys

from atwill.bench import fleet, fleet_report


def main(argv: list[str]) -> None:
    flags = [a for a in argv if a.startswith("--")]
    before, after, *rest = [a for a in argv if not a.startswith("--")]
    fleet_report.COMPARISONS["trees"] = (
        "PYTHONPATH", {"before": before, "after": after},
        {"before": f"controller from {before}", "after": f"controller from {after}"})
    if "--reversed" in flags:
        fleet.MODES = ("after", "before")  # type: ignore[attr-defined]
    results = fleet.main(nodes=int(rest[0]) if rest else 500,
                         seconds=float(rest[1]) if len(rest) > 1 else 10.0, compare="trees")
    if "--reversed" in flags:
        print("(measured after first; the ratios above are before / after)")
    del results


if __name__ == "__main__":
    main(sys.argv[1:])
