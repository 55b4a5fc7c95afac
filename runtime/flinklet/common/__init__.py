"""``flinklet.common``: the pieces PyFlink keeps in ``pyflink.common``.

Configuration (``Configuration``, typed ``ConfigOption``\\ s and the registry of
Flink's keys), sizes of time (``Duration``, ``Time``, ``Instant``), type information
(``Types``) and ``Row``, restart strategies, simple serialization schemas, and a job's
status and result. Import from here exactly as from ``pyflink.common``::

    from flinklet.common import Configuration, Duration, Row, Types
"""

from flinklet.common.config_options import ConfigOption, ConfigOptions
from flinklet.common.configuration import Configuration, validate_configuration
from flinklet.common.job_execution_result import JobExecutionResult
from flinklet.common.job_id import JobID
from flinklet.common.job_status import JobStatus
from flinklet.common.restart_strategy import RestartStrategies, RestartStrategyConfiguration
from flinklet.common.serialization import (
    DeserializationSchema,
    Encoder,
    SerializationSchema,
    SimpleStringSchema,
)
from flinklet.common.time import Duration, Instant, Time
from flinklet.common.typeinfo import TypeInformation, Types
from flinklet.common.types import Row, RowKind

__all__ = [
    "ConfigOption",
    "ConfigOptions",
    "Configuration",
    "DeserializationSchema",
    "Duration",
    "Encoder",
    "Instant",
    "JobExecutionResult",
    "JobID",
    "JobStatus",
    "RestartStrategies",
    "RestartStrategyConfiguration",
    "Row",
    "RowKind",
    "SerializationSchema",
    "SimpleStringSchema",
    "Time",
    "TypeInformation",
    "Types",
    "validate_configuration",
]
