"""``RuntimeExecutionMode``: streaming, batch, or automatic (batch if all sources are bounded)."""

from __future__ import annotations

from enum import Enum


class RuntimeExecutionMode(Enum):
    STREAMING = 0
    BATCH = 1
    AUTOMATIC = 2
