"""Job ids: 32 lower-case hex characters, as Flink prints them.

A job id names a job in the REST API paths (``/jobs/<id>``), in checkpoint directories
(``<dir>/<id>/chk-7``) and in the operator's status, so it must have Flink's form.
``JobID`` is a ``str`` so it can be used anywhere a string is expected.

>>> job_id = JobID.generate()
>>> len(job_id), JobID.from_hex_string(str(job_id)) == job_id
(32, True)
"""

from __future__ import annotations

import re
import secrets

from flinklet.errors import ApiUsageError

__all__ = ["JobID"]

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class JobID(str):
    """A job id: a string of exactly 32 hex characters (stored lower-case)."""

    __slots__ = ()

    def __new__(cls, value: str) -> JobID:
        if not isinstance(value, str) or not _HEX32.match(value.lower()):
            raise ApiUsageError(
                f"a job id is 32 hex characters (e.g. 'a1b2...'), got {value!r}; "
                "copy it from `flinklet list` or the REST API"
            )
        return super().__new__(cls, value.lower())

    @staticmethod
    def generate() -> JobID:
        """A new random job id."""
        return JobID(secrets.token_hex(16))

    @staticmethod
    def from_hex_string(hex_string: str) -> JobID:
        return JobID(hex_string)

    def to_hex_string(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"JobID({str.__repr__(self)})"
