"""The built-in workloads, one module per family; importing a module registers its
workloads with ``benchmarks.registry``."""

# Registration order is the order of the suite and of its report.
# isort: off
from benchmarks.workloads import pipeline
from benchmarks.workloads import keyed
from benchmarks.workloads import nexmark
from benchmarks.workloads import nexmark_windows
from benchmarks.workloads import windows

# isort: on

__all__ = ["keyed", "nexmark", "nexmark_windows", "pipeline", "windows"]
