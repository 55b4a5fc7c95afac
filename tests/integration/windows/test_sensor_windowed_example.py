"""``python examples/sensor_windowed_average.py`` runs, finishes and prints the right
per-sensor, per-second averages."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LINE = re.compile(
    r"^(?:\d+> )?(sensor_\d+) (\d\d:\d\d:\d\d): avg (-?\d+\.\d\d) C \((\d+) readings\)$"
)


def _expected(count: int, num_sensors: int) -> dict[tuple[str, str], tuple[float, int]]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from _sensors import reading
    finally:
        sys.path.remove(str(EXAMPLES))
    windows: dict[tuple[str, str], list[float]] = defaultdict(list)
    for i in range(count):
        r = reading(i, num_sensors)
        start = r.timestamp - r.timestamp % 1000  # 1 s tumbling windows
        second = datetime.fromtimestamp(start / 1000, UTC).strftime("%H:%M:%S")
        windows[(r.id, second)].append((r.temperature - 32) * 5.0 / 9.0)
    return {k: (sum(v) / len(v), len(v)) for k, v in windows.items()}


def test_sensor_windowed_average_example_prints_every_window() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "sensor_windowed_average.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = {}
    for line in done.stdout.splitlines():
        match = LINE.match(line)
        assert match, line
        sensor, second, avg, n = match.groups()
        got[(sensor, second)] = (float(avg), int(n))
    # 500 readings of 5 sensors every 100 ms: 10 one-second windows per sensor
    expected = _expected(500, 5)
    assert len(got) == 50 and got.keys() == expected.keys()
    for window, (avg, n) in got.items():
        # printed with 2 decimals; the sum's order (arrival order) may move the last digit
        assert n == expected[window][1] == 10
        assert abs(avg - expected[window][0]) <= 0.006, window
