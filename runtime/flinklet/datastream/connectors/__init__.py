"""Connectors: sources and sinks (PyFlink's ``pyflink.datastream.connectors``)."""

from flinklet.datastream.connectors.base import Boundedness, Source, SourceReader
from flinklet.datastream.connectors.datagen import (
    DataGeneratorSource,
    GeneratorFunction,
    RateLimiterStrategy,
)
from flinklet.datastream.connectors.file_system import (
    BucketAssigner,
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)
from flinklet.datastream.connectors.number_seq import NumberSequenceSource
from flinklet.datastream.connectors.two_phase_commit import TwoPhaseCommitSinkFunction

__all__ = [
    "Boundedness",
    "BucketAssigner",
    "DataGeneratorSource",
    "FileSink",
    "FileSource",
    "GeneratorFunction",
    "NumberSequenceSource",
    "OutputFileConfig",
    "RateLimiterStrategy",
    "RollingPolicy",
    "Source",
    "SourceReader",
    "StreamFormat",
    "TwoPhaseCommitSinkFunction",
]
