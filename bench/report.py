"""Print bench/results/*.json as the Markdown tables each benchmark printed (pasted into docs/benchmarks.md).

    .venv/bin/python bench/report.py [name ...] > /tmp/tables.md

Every benchmark stores its own tables in its JSON (harness.Bench.table), so this knows none of them.
"""

from __future__ import annotations

import json
import sys

from harness import RESULTS


def main(argv: list[str] | None = None) -> int:
    names = argv if argv is not None else sys.argv[1:]
    paths = [RESULTS / f"bench_{n.removeprefix('bench_')}.json" for n in names] or sorted(RESULTS.glob("bench_*.json"))
    for path in paths:
        if not path.exists() or "tables" not in (r := json.loads(path.read_text())):
            print(f"<!-- {path.name}: no tables (missing, or written before bench/harness.py) -->\n")
            continue
        print(f"#### `{r['benchmark']}.py`, finished {r['finished_at']}, load at start "
              f"{r['machine']['loadavg_at_start']}, at end {r['loadavg_at_end']}\n")
        print("\n\n".join(r["tables"]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
