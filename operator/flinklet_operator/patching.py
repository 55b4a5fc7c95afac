"""JSON merge patches (RFC 7386): the smallest patch from one status to the next.

The operator computes the whole next status, then sends only what changed, with ``null``
for what disappeared, so that concurrent writers of other fields are left alone.

>>> merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 5}})
{'b': {'c': 5, 'd': None}}
>>> apply_merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 5, "d": None}})
{'a': 1, 'b': {'c': 5}}
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["apply_merge_patch", "merge_patch"]


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``old`` into ``new`` (lists are replaced whole)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(old[key], dict):
            nested = merge_patch(old[key], value)
            if nested:
                patch[key] = nested
        elif value != old[key]:
            patch[key] = copy.deepcopy(value)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` (a new value; ``target`` is not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
