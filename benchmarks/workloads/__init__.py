"""The built-in workloads, one module per family; importing a module registers its
workloads with ``benchmarks.registry``."""

from benchmarks.workloads import keyed, pipeline

__all__ = ["keyed", "pipeline"]
