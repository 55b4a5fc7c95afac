"""The built-in workloads, one module per family; importing a module registers its
workloads with ``benchmarks.registry``."""

# Registration order is the order of the suite and of its report.
# isort: off
from benchmarks.workloads import pipeline
from benchmarks.workloads import keyed

# isort: on

__all__ = ["keyed", "pipeline"]
