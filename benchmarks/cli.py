"""The command line: ``python -m benchmarks [--quick] [--only NAME ...] [--cluster]
[--peers pyflink,bytewax] [--all] [--profile]``.

A run measures the selected workloads (engine against plain loop, and the peers asked
for), then the system experiments: the local ones (latency, checkpoints) always, the
cluster ones (scaling, recovery, savepoints) with ``--cluster``. ``--all`` is
``--cluster --peers pyflink,bytewax``: every figure of the report.

Exit status: 0 when every selected workload computed the right result and no
experiment failed (and, with ``--strict``, every target ratio was met); 1 when a result
was wrong or a program or experiment failed; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.errors import BenchmarkError, UnknownWorkloadError
from benchmarks.experiments import Experiment, registered_experiments, run_experiment
from benchmarks.machine import describe_machine, load_average, machine_summary
from benchmarks.peers import Peer, select_peers
from benchmarks.registry import Workload, registered, select
from benchmarks.report import RESULTS_DIR, Run, check_plotting, write_run
from benchmarks.runner import run_workload

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Flinklet benchmarks: each workload's engine time as a ratio of a plain "
        "Python loop's, measured in the same run, with results checked for equality.",
    )
    p.add_argument("--quick", action="store_true", help="small inputs, one repeat (a smoke run)")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these workloads or families (see --list)",
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="also run the cluster experiments (scaling, recovery, savepoints) on a local "
        "JobManager + TaskManagers",
    )
    p.add_argument(
        "--peers",
        metavar="NAMES",
        default="",
        help="comma-separated peers to run on the workloads they support (pyflink, "
        "bytewax); each is installed once in ~/.cache/flinklet/bench-venvs/",
    )
    p.add_argument(
        "--all", action="store_true", help="every figure: --cluster --peers pyflink,bytewax"
    )
    p.add_argument(
        "--no-experiments", action="store_true", help="only the workloads, no experiments"
    )
    p.add_argument(
        "--list", action="store_true", help="list the workloads and experiments and exit"
    )
    p.add_argument(
        "--repeats", type=int, help="timed runs per program (default: 5, or 1 with --quick)"
    )
    p.add_argument("--records", type=int, help="override every workload's record count")
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the engine program of each selected workload with cProfile instead "
        "of benchmarking (writes results/profile-<workload>.txt)",
    )
    p.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where to write the results"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--strict", action="store_true", help="also exit 1 when a target ratio is missed"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for w in registered():
            print(f"{w.name:<22} {w.family:<10} target <= {w.target_ratio:.1f}x  {w.description}")
        for e in registered_experiments():
            print(f"{e.name:<22} {e.group:<10} experiment      {e.title}")
        return 0
    if args.all:
        args.cluster = True
        args.peers = args.peers or "pyflink,bytewax"
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if repeats < 1 or (args.records is not None and args.records < 1):
        print("--repeats and --records must be >= 1", file=sys.stderr)
        return 2
    try:
        workloads, experiments = _selection(args.only, args.cluster, args.no_experiments)
        peers = select_peers([n.strip() for n in args.peers.split(",") if n.strip()])
        if not args.no_plots and not args.profile:
            check_plotting()
    except (BenchmarkError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results_dir: Path = args.results_dir

    if args.profile:
        return _profile(workloads, args.records, args.quick, results_dir)

    machine = describe_machine()
    mode = "quick" if args.quick else "full"
    run = Run(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), mode, repeats, machine)
    run.peers_requested = [p.name for p in peers]
    print(f"Flinklet benchmarks, {mode} mode, best of {repeats}; {machine_summary(machine)}")
    start = time.perf_counter()
    _prepare_peers(peers, run)
    for w in workloads:
        records = args.records or w.records(args.quick)
        run.results.append(run_workload(w, records, repeats, peers=peers, quick=args.quick))
    for e in experiments:
        run.experiments.append(run_experiment(e, args.quick, print))
    run.duration_s = time.perf_counter() - start
    run.machine["load_average_end"] = load_average()
    written = write_run(run, results_dir, plots=not args.no_plots)

    print()
    for r in run.results:
        if r.ok:
            assert r.engine is not None and r.baseline is not None
            print(
                f"{r.workload.name:<22} engine {r.engine.records_per_s_best:>12,.0f} rec/s  "
                f"loop {r.baseline.records_per_s_best:>12,.0f} rec/s  "
                f"ratio {r.ratio_best:5.2f}x (median {r.ratio_median:.2f}x, "
                f"CPU {r.ratio_cpu or 0:.2f}x)  "
                f"target <= {r.workload.target_ratio:.1f}x: {r.status}"
            )
        else:
            print(f"{r.workload.name:<22} FAILED (see {results_dir / 'report.md'})")
        for p in r.peers:
            ratio = f"{p.ratio_best:.2f}x" if p.ratio_best is not None else "-"
            print(f"{'':<22} peer {p.name}: {p.status} {ratio} {p.detail[:100]}")
    for x in run.experiments:
        print(f"{x.experiment.name:<22} {x.status} ({x.duration_s:.0f} s)")
        for f in x.figures:
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
            print(f"{'':<22} {f.label}: {ratio} {f.baseline_label}")
    print(f"\n{run.duration_s:.0f} s; wrote " + ", ".join(str(p) for p in written))
    failed = [r.workload.name for r in run.failed]
    failed += [x.experiment.name for x in run.experiments if x.status == "failed"]
    if failed:
        print(
            f"error: {len(failed)} workload(s) or experiment(s) failed: " + ", ".join(failed),
            file=sys.stderr,
        )
        return 1
    if args.strict and run.missed:
        print(
            "error: target ratio missed by " + ", ".join(r.workload.name for r in run.missed),
            file=sys.stderr,
        )
        return 1
    return 0


def _selection(
    only: list[str] | None, cluster: bool, no_experiments: bool
) -> tuple[list[Workload], list[Experiment]]:
    """The workloads and experiments to run. ``--only`` names workloads, workload
    families, experiments or experiment groups (local, cluster); without it every
    workload and the local experiments run (and the cluster ones with ``--cluster``)."""
    experiments = registered_experiments()
    if not only:
        chosen = [e for e in experiments if e.group == "local" or cluster]
        return select(None), [] if no_experiments else chosen
    names = {e.name for e in experiments} | {e.group for e in experiments}
    picked = [e for e in experiments if e.name in only or e.group in only]
    rest = [n for n in only if n not in names]
    workloads: list[Workload] = []
    if rest:
        try:
            workloads = select(rest)
        except UnknownWorkloadError as exc:
            raise UnknownWorkloadError(
                f"{exc}; experiments: {', '.join(e.name for e in experiments)} "
                f"(groups: local, cluster)"
            ) from exc
    return workloads, [] if no_experiments else picked


def _prepare_peers(peers: list[Peer], run: Run) -> None:
    for peer in peers:
        reason = peer.prepare(install=True, log=print)
        run.peer_status[peer.name] = reason or "ready"
        print(f"[peers] {peer.name}: {reason or 'ready'}")


def _profile(workloads: list[Workload], records: int | None, quick: bool, results_dir: Path) -> int:
    from benchmarks.profiling import profile_workload

    results_dir.mkdir(parents=True, exist_ok=True)
    status = 0
    for w in workloads:
        n = records or w.records(quick)
        try:
            prof = profile_workload(w, n)
        except BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        path = results_dir / f"profile-{w.name}.txt"
        path.write_text(prof.text, encoding="utf-8")
        print(prof.text)
        print(f"(written to {path})\n")
    return status
