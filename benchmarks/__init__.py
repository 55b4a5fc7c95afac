"""Flinklet's benchmark harness.

Every workload is a computation written twice, as a Flinklet job and as a plain Python
loop; a run times both, reports the engine's time as a ratio of the loop's (measured in
the same run, on the same machine) and fails if their results differ. Run it from the
repository root::

    python -m benchmarks            # workloads + local experiments -> benchmarks/results/
    python -m benchmarks --all      # + cluster experiments + PyFlink and Bytewax peers
    python -m benchmarks --quick    # small inputs, one repeat
    python -m benchmarks --only keyed_sum pipeline nexmark latency
    python -m benchmarks --profile --only keyed_sum   # cProfile the engine program

Workloads register themselves (``benchmarks.registry``); system experiments (latency,
checkpoints, scaling, recovery, savepoints) too (``benchmarks.experiments``); other
stream processors plug in as peers (``benchmarks.peers``). See ``docs/benchmarks.md``.
"""

from benchmarks.registry import Outcome, Workload, register, registered
from benchmarks.runner import WorkloadResult, run_workload

__all__ = ["Outcome", "Workload", "WorkloadResult", "register", "registered", "run_workload"]
