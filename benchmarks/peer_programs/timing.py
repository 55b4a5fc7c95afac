"""The measuring loop every peer program shares: parse ``--records N --repeats R``, warm
up on a tenth of the input, time ``R`` runs, print the agreed JSON line.

    main(build=lambda n: list(range(n)), run=run_job)   # run(input) -> (count, checksum)
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["main"]


def main(build: Callable[[int], Any], run: Callable[[Any], tuple[int, int]]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    run(build(max(1, args.records // 10)))  # warm-up: start-up, imports, JIT
    data = build(args.records)
    seconds: list[float] = []
    outcome: tuple[int, int] | None = None
    for i in range(args.repeats):
        gc.collect()
        start = time.perf_counter()
        got = run(data)
        seconds.append(time.perf_counter() - start)
        if outcome is not None and got != outcome:
            raise SystemExit(f"repeat {i + 1} computed {got}, repeat 1 computed {outcome}")
        outcome = got
    assert outcome is not None
    print(json.dumps({"seconds": seconds, "count": outcome[0], "checksum": outcome[1]}))
