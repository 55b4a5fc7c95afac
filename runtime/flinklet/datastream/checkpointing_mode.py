"""``CheckpointingMode``: exactly-once (aligned barriers) or at-least-once (no alignment)."""

from __future__ import annotations

from enum import Enum


class CheckpointingMode(Enum):
    EXACTLY_ONCE = 0
    AT_LEAST_ONCE = 1
