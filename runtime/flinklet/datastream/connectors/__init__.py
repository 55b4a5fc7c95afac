"""Connectors: sources and sinks (PyFlink's ``pyflink.datastream.connectors``)."""

from flinklet.datastream.connectors.base import Boundedness, Source, SourceReader
from flinklet.datastream.connectors.datagen import (
    DataGeneratorSource,
    GeneratorFunction,
    RateLimiterStrategy,
)
from flinklet.datastream.connectors.number_seq import NumberSequenceSource

__all__ = [
    "Boundedness",
    "DataGeneratorSource",
    "GeneratorFunction",
    "NumberSequenceSource",
    "RateLimiterStrategy",
    "Source",
    "SourceReader",
]
