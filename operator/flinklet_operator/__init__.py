"""The Flinklet Kubernetes operator: FlinkJob resources to running Flinklet clusters."""

__version__ = "0.1.0"
