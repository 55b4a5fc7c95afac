"""Programs that run the workloads on other stream processors (see ``benchmarks.peers``).

They run in the peers' own virtualenvs, with the repository root on ``PYTHONPATH``, and
import only ``benchmarks.inputs``, ``benchmarks.nexmark`` and the helpers here: nothing
of Flinklet.
"""
