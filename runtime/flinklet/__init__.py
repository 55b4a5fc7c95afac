"""Flinklet: Apache Flink's model of stateful stream processing, in Python."""

__version__ = "0.1.0"
