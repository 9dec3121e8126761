"""Do two runs give the same numbers? Compares their ``metrics.jsonl`` line by line,
every field except the timing ones, exactly (floats as JSON wrote them).

    python benchmarks/same_numbers.py RUN_A RUN_B [RUN_A2 RUN_B2 ...]

Used to show that a refactor is behaviour-preserving: the same command run before and
after a change must give bit-identical metrics. ``disc_bce`` (the name TRIRL logged
before the learners shared one metric vocabulary) is read as ``disc_data_loss``; for
TRIRL's logistic loss the two were always the same number. Exit status 1 on the first
difference, which is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMING = {"wall_s"}
RENAMED = {"disc_bce": "disc_data_loss"}


def _lines(run: Path) -> list[dict]:
    out = []
    for text in (Path(run) / "metrics.jsonl").read_text().splitlines():
        line = json.loads(text)
        line = {RENAMED.get(k, k): v for k, v in line.items() if k not in TIMING}
        out.append(line)
    return out


def compare(a: Path, b: Path) -> str | None:
    """None when the runs' metrics are identical, else the first difference."""
    la, lb = _lines(a), _lines(b)
    if len(la) != len(lb):
        return f"{len(la)} vs {len(lb)} iterations"
    for i, (x, y) in enumerate(zip(la, lb)):
        if set(x) != set(y):
            return f"iteration {i + 1}: fields {sorted(set(x) ^ set(y))} differ"
        for key in sorted(x):
            if x[key] != y[key]:
                return f"iteration {i + 1}: {key} {x[key]!r} vs {y[key]!r}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    status = 0
    for a, b in zip(argv[::2], argv[1::2]):
        problem = compare(Path(a), Path(b))
        n = len(_lines(Path(a)))
        print(f"{a} vs {b}: " + (f"DIFFERENT ({problem})" if problem else
                                 f"identical ({n} iterations, every non-timing field)"))
        status |= problem is not None
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
