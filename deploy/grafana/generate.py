"""Write sqm's Grafana dashboards (deploy/grafana/dashboards/*.json) from their Python definitions.

    python deploy/grafana/generate.py            # from the repository root; rewrites the committed JSON
    python deploy/grafana/generate.py --out DIR  # somewhere else (the tests compare the two)

Needs grafana-foundation-sdk (pinned to a Grafana 11 build in pyproject.toml). The output is the
same on every run (sorted keys, fixed uids and panel ids), so a diff shows exactly what changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqm_dashboards import DASHBOARDS_DIR, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
