"""``StreamExecutionEnvironment``: where a job is configured, built and executed.

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_collection([1, 2, 3]).map(lambda x: x * 10).print()
    env.execute("demo")

Configuration follows Flink 2.x keys (``parallelism.default``,
``pipeline.auto-watermark-interval``, ``restart-strategy.type`` ...); misspelled known
keys fail with a "did you mean" error, unknown ones are kept and reported. Jobs run in
this process (all subtasks interleaved on one thread) unless submitted to a cluster.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import copy
import json
import logging
import threading
from typing import Any

from flinklet._private.checkpoint.coordinator import CheckpointSettings
from flinklet._private.exec.executor import ExecutionSettings, LocalJob
from flinklet._private.exec.sources import (
    CollectionSource,
    SourceFunctionSource,
    SourceOperator,
)
from flinklet._private.exec.watermarks import TimestampsAndWatermarksOperator
from flinklet._private.graph.stream_graph import (
    JobGraph,
    StreamGraph,
    build_job_graph,
    build_stream_graph,
)
from flinklet._private.graph.transformations import (
    OneInputTransformation,
    SourceTransformation,
    Transformation,
)
from flinklet._private.state.keygroups import check_max_parallelism
from flinklet.common.config_options import (
    CoreOptions,
    ExecutionOptions,
    NettyShuffleEnvironmentOptions,
    PipelineOptions,
)
from flinklet.common.configuration import Configuration, validate_configuration
from flinklet.common.job_execution_result import JobExecutionResult
from flinklet.common.job_status import JobStatus
from flinklet.common.restart_strategy import RestartStrategyConfiguration, restart_backoff_from
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream.checkpoint_config import CheckpointConfig
from flinklet.datastream.connectors.base import Source
from flinklet.datastream.data_stream import DataStream
from flinklet.datastream.execution_mode import RuntimeExecutionMode
from flinklet.errors import ApiUsageError, ConfigurationError

log = logging.getLogger(__name__)

__all__ = [
    "ExecutionConfig",
    "JobClient",
    "ProgramContext",
    "StreamExecutionEnvironment",
    "reset_program_context",
    "set_program_context",
]

# defaults set by the CLI (``flinklet run -p 4 -D key=value``) for every new environment
_context_configuration: Configuration | None = None


def set_context_configuration(configuration: Configuration | None) -> None:
    global _context_configuration
    _context_configuration = configuration


# where ``execute`` sends jobs when a program runs inside a cluster (application or session
# mode): a callable (job_graph, settings, checkpoint_settings, restore_from, allow) -> job
_context_executor: Any = None


def set_context_executor(executor: Any) -> None:
    global _context_executor
    _context_executor = executor


class ProgramContext:
    """How a job program started on someone's behalf executes: ``flinklet info`` (print
    the plan instead of running) and session-mode submission (the JobManager runs the
    program and takes over its jobs).

    Installed for the current thread with :func:`set_program_context`. Every environment
    created under it applies ``configuration`` (after the CLI's context configuration);
    ``execute()``/``execute_async()`` call :meth:`before_execute` with the environment
    before the job is built (it may raise to end the program) and :meth:`on_job` with
    every job built, before it starts.
    """

    def __init__(self, configuration: Configuration | None = None) -> None:
        self.configuration = configuration

    def before_execute(self, env: StreamExecutionEnvironment, job_name: str) -> None:
        """Called by ``execute``/``execute_async`` before the job graph is built."""

    def on_job(self, job: LocalJob) -> None:
        """Called with every job the program builds, before it runs."""


_program_context: contextvars.ContextVar[ProgramContext | None] = contextvars.ContextVar(
    "flinklet_program_context", default=None
)


def set_program_context(context: ProgramContext | None) -> contextvars.Token[ProgramContext | None]:
    """Install ``context`` for programs run on this thread; undo with
    :func:`reset_program_context`. (New threads start without one.)"""
    return _program_context.set(context)


def reset_program_context(token: contextvars.Token[ProgramContext | None]) -> None:
    _program_context.reset(token)


class ExecutionConfig:
    """Job-wide execution settings (a view on the environment's configuration)."""

    def __init__(self, env: StreamExecutionEnvironment) -> None:
        self._env = env

    def set_auto_watermark_interval(self, interval: int) -> ExecutionConfig:
        if interval < 0:
            raise ApiUsageError("the auto watermark interval must be >= 0 ms (0 disables it)")
        self._env._conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, int(interval))
        return self

    def get_auto_watermark_interval(self) -> int:
        return int(self._env._conf.get(PipelineOptions.AUTO_WATERMARK_INTERVAL))

    def set_parallelism(self, parallelism: int) -> ExecutionConfig:
        self._env.set_parallelism(parallelism)
        return self

    def get_parallelism(self) -> int:
        return self._env.get_parallelism()

    def set_max_parallelism(self, max_parallelism: int) -> ExecutionConfig:
        self._env.set_max_parallelism(max_parallelism)
        return self

    def get_max_parallelism(self) -> int:
        return self._env.get_max_parallelism()

    def set_global_job_parameters(self, parameters: dict[str, str]) -> ExecutionConfig:
        self._env._job_parameters = {str(k): str(v) for k, v in dict(parameters).items()}
        return self

    def get_global_job_parameters(self) -> dict[str, str]:
        return dict(self._env._job_parameters)

    def enable_object_reuse(self) -> ExecutionConfig:
        self._env._conf.set(PipelineOptions.OBJECT_REUSE, True)
        return self

    def disable_object_reuse(self) -> ExecutionConfig:
        self._env._conf.set(PipelineOptions.OBJECT_REUSE, False)
        return self

    def is_object_reuse_enabled(self) -> bool:
        return bool(self._env._conf.get(PipelineOptions.OBJECT_REUSE))


class JobClient:
    """Handle of a job started with ``execute_async``. Methods returning futures mirror
    PyFlink's (``client.get_job_execution_result().result()``)."""

    def __init__(self, job: Any, job_name: str, thread: threading.Thread) -> None:
        self._job = job
        self._job_name = job_name
        self._thread = thread
        self._result: concurrent.futures.Future[JobExecutionResult] = concurrent.futures.Future()

    def get_job_id(self) -> str:
        return str(self._job.job_id)

    def get_job_status(self) -> concurrent.futures.Future[JobStatus]:
        f: concurrent.futures.Future[JobStatus] = concurrent.futures.Future()
        f.set_result(self._job.status)
        return f

    def cancel(self) -> concurrent.futures.Future[None]:
        self._job.cancel()
        f: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._job.wait(30)
        f.set_result(None)
        return f

    def get_job_execution_result(self) -> concurrent.futures.Future[JobExecutionResult]:
        return self._result

    def trigger_savepoint(
        self, savepoint_directory: str | None = None
    ) -> concurrent.futures.Future[str]:
        """Take a savepoint; the future's result is the savepoint directory."""
        future: concurrent.futures.Future[str] = self._job.trigger_savepoint(savepoint_directory)
        return future

    def stop_with_savepoint(
        self, advance_to_end_of_event_time: bool = False, savepoint_directory: str | None = None
    ) -> concurrent.futures.Future[str]:
        """Stop the job with a savepoint. With ``advance_to_end_of_event_time`` (drain) the
        sources end and the final watermark fires every timer and window first."""
        future: concurrent.futures.Future[str] = self._job.stop_with_savepoint(
            savepoint_directory, advance_to_end_of_event_time
        )
        return future


class StreamExecutionEnvironment:
    """Entry point of every DataStream program."""

    def __init__(self, configuration: Configuration | None = None) -> None:
        self._conf = Configuration()
        self._unknown_keys: list[str] = []
        self._transformations: list[Transformation] = []
        self._job_parameters: dict[str, str] = {}
        self._restart_strategy: RestartStrategyConfiguration | None = None
        self._chaining = True
        self._state_backend: Any = None
        self._checkpoint_config: Any = None
        self._last_job: LocalJob | None = None
        if _context_configuration is not None:
            self.configure(_context_configuration)
        program_context = _program_context.get()
        if program_context is not None and program_context.configuration is not None:
            self.configure(program_context.configuration)
        if configuration is not None:
            self.configure(configuration)

    @staticmethod
    def get_execution_environment(
        configuration: Configuration | None = None,
    ) -> StreamExecutionEnvironment:
        return StreamExecutionEnvironment(configuration)

    # -- configuration --------------------------------------------------------------------

    def configure(self, configuration: Configuration) -> StreamExecutionEnvironment:
        """Apply Flink configuration keys; raises ``ConfigurationError`` for misspelled
        known keys and bad values, and reports (keeps) unknown ones."""
        merged = Configuration(self._conf)
        merged.add_all(configuration)
        unknown = validate_configuration(merged)
        for key in unknown:
            if key not in self._unknown_keys:
                log.warning("Unknown configuration key '%s' is kept but not used by Flinklet", key)
        self._unknown_keys = unknown
        self._conf = merged
        max_p = self._conf.get(PipelineOptions.MAX_PARALLELISM)
        if max_p != -1:
            check_max_parallelism(max_p)
        if self._conf.get(CoreOptions.DEFAULT_PARALLELISM) < 1:
            raise ConfigurationError("'parallelism.default' must be >= 1")
        return self

    def get_configuration(self) -> Configuration:
        return Configuration(self._conf)

    def unknown_configuration_keys(self) -> list[str]:
        """Configuration keys that Flinklet keeps but does not know."""
        return list(self._unknown_keys)

    def get_config(self) -> ExecutionConfig:
        return ExecutionConfig(self)

    def set_parallelism(self, parallelism: int) -> StreamExecutionEnvironment:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ApiUsageError(f"parallelism must be an int >= 1, got {parallelism!r}")
        self._conf.set(CoreOptions.DEFAULT_PARALLELISM, parallelism)
        return self

    def get_parallelism(self) -> int:
        return int(self._conf.get(CoreOptions.DEFAULT_PARALLELISM))

    def set_max_parallelism(self, max_parallelism: int) -> StreamExecutionEnvironment:
        check_max_parallelism(max_parallelism)
        self._conf.set(PipelineOptions.MAX_PARALLELISM, max_parallelism)
        return self

    def get_max_parallelism(self) -> int:
        return int(self._conf.get(PipelineOptions.MAX_PARALLELISM))

    def set_runtime_mode(self, execution_mode: RuntimeExecutionMode) -> StreamExecutionEnvironment:
        self._conf.set(ExecutionOptions.RUNTIME_MODE, execution_mode.name)
        return self

    def set_buffer_timeout(self, timeout_millis: int) -> StreamExecutionEnvironment:
        """-1 flushes only full buffers; 0 flushes after every batch (lowest latency)."""
        self._conf.set(ExecutionOptions.BUFFER_TIMEOUT, int(timeout_millis))
        return self

    def get_buffer_timeout(self) -> int:
        return int(self._conf.get(ExecutionOptions.BUFFER_TIMEOUT))

    def set_restart_strategy(
        self, restart_strategy_configuration: RestartStrategyConfiguration
    ) -> StreamExecutionEnvironment:
        if not isinstance(restart_strategy_configuration, RestartStrategyConfiguration):
            raise ApiUsageError(
                "set_restart_strategy expects e.g. RestartStrategies.fixed_delay_restart(3, 1000)"
            )
        self._restart_strategy = restart_strategy_configuration
        return self

    def get_restart_strategy(self) -> RestartStrategyConfiguration | None:
        return self._restart_strategy

    def disable_operator_chaining(self) -> StreamExecutionEnvironment:
        self._chaining = False
        return self

    def is_chaining_enabled(self) -> bool:
        return self._chaining

    def set_stream_time_characteristic(self, characteristic: Any) -> StreamExecutionEnvironment:
        """Deprecated in Flink; event time is always available. Accepted for old programs."""
        return self

    def set_state_backend(self, state_backend: Any) -> StreamExecutionEnvironment:
        self._state_backend = state_backend
        return self

    def get_state_backend(self) -> Any:
        return self._state_backend

    def enable_checkpointing(self, interval: int, mode: Any = None) -> StreamExecutionEnvironment:
        from flinklet.common.config_options import CheckpointingOptions

        if interval <= 0:
            raise ApiUsageError("the checkpoint interval must be a positive number of ms")
        self._conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, int(interval))
        if mode is not None:
            self._conf.set(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE, mode.name)
        return self

    def get_checkpoint_config(self) -> CheckpointConfig:
        return CheckpointConfig(self)

    def get_checkpoint_interval(self) -> int:
        from flinklet.common.config_options import CheckpointingOptions

        value = self._conf.get(CheckpointingOptions.CHECKPOINTING_INTERVAL)
        return -1 if value is None else int(value)

    # -- sources -----------------------------------------------------------------------------

    def _parallelism_for_new(self) -> int | None:
        return None  # resolved against parallelism.default when the graph is built

    def _add(self, t: Transformation) -> None:
        self._transformations.append(t)

    def from_source(
        self,
        source: Source,
        watermark_strategy: WatermarkStrategy,
        source_name: str,
        type_info: Any = None,
    ) -> DataStream[Any]:
        if not isinstance(source, Source):
            raise ApiUsageError(
                f"from_source() expects a Source (e.g. NumberSequenceSource, FileSource, "
                f"DataGeneratorSource), got {type(source).__name__}"
            )
        if not isinstance(watermark_strategy, WatermarkStrategy):
            raise ApiUsageError(
                "from_source() needs a WatermarkStrategy; use WatermarkStrategy.no_watermarks() "
                "if the job does not use event time"
            )
        t = SourceTransformation(
            name=f"Source: {source_name}",
            output_type=type_info,
            factory=lambda: SourceOperator(source),
            bounded=source.is_bounded(),
            parallelism=source.default_parallelism(),
        )
        stream: DataStream[Any] = DataStream(self, t)
        if watermark_strategy.emits_watermarks:
            wt = OneInputTransformation(
                name="Timestamps/Watermarks",
                output_type=type_info,
                input=t,
                factory=lambda: TimestampsAndWatermarksOperator(watermark_strategy, True),
                parallelism=t.parallelism,
            )
            self._add(wt)
            stream = _SourceStream(self, wt, t)
        return stream

    def from_collection(self, collection: Any, type_info: Any = None) -> DataStream[Any]:
        """A bounded, non-parallel source over the elements of ``collection``."""
        try:
            elements = list(collection)
        except TypeError as exc:
            raise ApiUsageError(
                f"from_collection() needs an iterable, got {type(collection).__name__}"
            ) from exc
        return self.from_source(
            CollectionSource(elements),
            WatermarkStrategy.no_watermarks(),
            "Collection Source",
            type_info,
        )

    def add_source(
        self, source_func: Any, source_name: str = "Custom Source", type_info: Any = None
    ) -> DataStream[Any]:
        if not callable(getattr(source_func, "run", None)):
            raise ApiUsageError(
                "add_source() expects a SourceFunction with run(ctx) and cancel(); for the "
                "new source API use from_source()"
            )
        return self.from_source(
            SourceFunctionSource(source_func),
            WatermarkStrategy.no_watermarks(),
            source_name,
            type_info,
        )

    def read_text_file(self, file_path: str, charset_name: str = "UTF-8") -> DataStream[str]:
        from flinklet.datastream.connectors.file_system import FileSource, StreamFormat

        source = FileSource.for_record_stream_format(
            StreamFormat.text_line_format(charset_name), file_path
        ).build()
        return self.from_source(source, WatermarkStrategy.no_watermarks(), file_path)

    # -- execution -----------------------------------------------------------------------------

    def _settings(self, job_graph: JobGraph) -> ExecutionSettings:
        conf = self._conf
        mode = conf.get(ExecutionOptions.RUNTIME_MODE)
        if mode == "BATCH" and not job_graph.bounded:
            raise ApiUsageError(
                "execution.runtime-mode is BATCH but a source is unbounded; use STREAMING or "
                "make every source bounded"
            )
        batch = mode == "BATCH" or (mode == "AUTOMATIC" and job_graph.bounded)
        checkpointing = self.get_checkpoint_interval() > 0
        timeout = conf.get(ExecutionOptions.BUFFER_TIMEOUT)
        if not conf.get(ExecutionOptions.BUFFER_TIMEOUT_ENABLED):
            timeout = -1
        from flinklet.datastream.state_backend import HashMapStateBackend

        backend = self._state_backend
        if backend is None:
            from flinklet.common.config_options import RocksDBOptions, StateBackendOptions
            from flinklet.datastream.state_backend import EmbeddedRocksDBStateBackend

            if conf.get(StateBackendOptions.STATE_BACKEND) == "rocksdb":
                from flinklet.common.config_options import CheckpointingOptions as C

                backend = EmbeddedRocksDBStateBackend(
                    bool(conf.get(C.INCREMENTAL_CHECKPOINTS)),
                    conf.get(RocksDBOptions.LOCAL_DIRECTORIES),
                    conf.get(RocksDBOptions.FULL_SNAPSHOT),
                )
            else:
                backend = HashMapStateBackend()
        from flinklet.datastream.state_backend import EmbeddedRocksDBStateBackend as RocksDB

        if isinstance(backend, RocksDB) and backend.compression_per_level is None:
            from flinklet._private.state.rocksdb import parse_compression_per_level
            from flinklet.common.config_options import RocksDBOptions as R

            levels = conf.get(R.COMPRESSION_PER_LEVEL)
            if levels is not None:  # the key applies to a backend set in code, too
                backend = copy.copy(backend)
                backend.compression_per_level = parse_compression_per_level(levels)
        if isinstance(backend, HashMapStateBackend) and backend.snapshot is None:
            from flinklet.common.config_options import HashMapOptions

            backend = HashMapStateBackend(conf.get(HashMapOptions.SNAPSHOT))
        return ExecutionSettings(
            keyed_backend_factory=backend.create_keyed_backend,
            checkpointing=checkpointing,
            buffer_records=conf.get(NettyShuffleEnvironmentOptions.NETWORK_BUFFER_RECORDS),
            buffers_per_channel=conf.get(
                NettyShuffleEnvironmentOptions.NETWORK_BUFFERS_PER_CHANNEL
            ),
            floating_buffers=conf.get(
                NettyShuffleEnvironmentOptions.NETWORK_FLOATING_BUFFERS_PER_GATE
            ),
            buffer_timeout_ms=int(timeout),
            auto_watermark_interval_ms=int(conf.get(PipelineOptions.AUTO_WATERMARK_INTERVAL)),
            batch_mode=batch,
            job_parameters=dict(self._job_parameters),
            restart_backoff=restart_backoff_from(conf, self._restart_strategy, checkpointing),
        )

    def get_stream_graph(
        self, job_name: str = "Flink Streaming Job", clear: bool = True
    ) -> StreamGraph:
        leaves = [
            t for t in self._transformations if isinstance(t, OneInputTransformation) and t.is_sink
        ]
        if not leaves:
            raise ApiUsageError(
                "No operators defined in streaming topology. Cannot execute. Add a sink "
                "(print(), add_sink(), sink_to()) or use execute_and_collect()"
            )
        max_p = self.get_max_parallelism()
        graph = build_stream_graph(
            job_name,
            leaves,
            self.get_parallelism(),
            None if max_p == -1 else max_p,
            self._chaining,
        )
        if clear:
            self._transformations = []
        return graph

    def get_job_graph(self, job_name: str = "Flink Streaming Job") -> JobGraph:
        return build_job_graph(self.get_stream_graph(job_name))

    def get_execution_plan(self) -> str:
        """The job graph as JSON (vertices with their chained operators and edges)."""
        jg = build_job_graph(self.get_stream_graph(clear=False))
        return json.dumps(
            {
                "jobName": jg.job_name,
                "nodes": [
                    {
                        "id": v.id,
                        "contents": v.name,
                        "parallelism": v.parallelism,
                        "operators": [n.name for n in v.nodes],
                        "predecessors": [
                            {"id": e.source.id, "ship_strategy": str(e.partitioner)}
                            for e in v.inputs
                        ],
                    }
                    for v in jg.vertices
                ],
            },
            indent=2,
        )

    def _checkpoint_settings(self) -> CheckpointSettings:
        from flinklet.common.config_options import CheckpointingOptions as C

        conf = self._conf
        interval = conf.get(C.CHECKPOINTING_INTERVAL)
        storage = conf.get(C.CHECKPOINTS_DIRECTORY)
        if interval is not None and interval > 0 and storage is None:
            import tempfile

            storage = "file://" + tempfile.gettempdir() + "/flinklet-checkpoints"
            log.info("No execution.checkpointing.dir set: checkpoints go to %s", storage)
        options = {k: v for k, v in conf.to_dict().items() if k.startswith("s3.")}
        return CheckpointSettings(
            interval_ms=interval,
            exactly_once=conf.get(C.CHECKPOINTING_CONSISTENCY_MODE) == "EXACTLY_ONCE",
            timeout_ms=int(conf.get(C.CHECKPOINTING_TIMEOUT)),
            min_pause_ms=int(conf.get(C.MIN_PAUSE_BETWEEN_CHECKPOINTS)),
            max_concurrent=int(conf.get(C.MAX_CONCURRENT_CHECKPOINTS)),
            tolerable_failures=int(conf.get(C.TOLERABLE_FAILURE_NUMBER)),
            num_retained=int(conf.get(C.MAX_RETAINED_CHECKPOINTS)),
            retention=conf.get(C.EXTERNALIZED_CHECKPOINT_RETENTION),
            storage_uri=storage,
            savepoint_dir=conf.get(C.SAVEPOINT_DIRECTORY),
            storage_options=options,
        )

    def _prepare(self, job_name: str | None) -> tuple[str, Any]:
        from flinklet.common.config_options import PipelineOptions as P
        from flinklet.common.config_options import StateRecoveryOptions as R

        program_context = _program_context.get()
        name = job_name or self._conf.get(P.NAME) or "Flink Streaming Job"
        if program_context is not None:
            program_context.before_execute(self, name)
        job_graph = build_job_graph(self.get_stream_graph(name))
        restore = self._conf.get(R.SAVEPOINT_PATH)
        allow = bool(self._conf.get(R.IGNORE_UNCLAIMED_STATE))
        job: Any
        if _context_executor is not None:
            # inside a cluster (application / session mode): the JobManager runs it
            job = _context_executor(
                job_graph, self._settings(job_graph), self._checkpoint_settings(), restore, allow
            )
        else:
            job = LocalJob(
                job_graph,
                self._settings(job_graph),
                checkpoint_settings=self._checkpoint_settings(),
                restore_from=restore,
                allow_non_restored_state=allow,
            )
        self._last_job = job
        if program_context is not None:
            program_context.on_job(job)
        return name, job

    def execute(self, job_name: str | None = None) -> JobExecutionResult:
        """Run the job to completion in this process; raises ``JobExecutionError`` (with
        the failing operator and the user's traceback) if it fails."""
        _name, job = self._prepare(job_name)
        if isinstance(job, LocalJob):
            job.run()
        else:
            job.wait()
            if job.failure is not None:
                raise job.failure
        return JobExecutionResult(job.job_id, job.net_runtime_ms, {})

    def execute_async(self, job_name: str = "Flink Streaming Job") -> JobClient:
        name, job = self._prepare(job_name)
        holder: dict[str, JobClient] = {}

        def run() -> None:
            client = holder["client"]
            try:
                if isinstance(job, LocalJob):
                    job.run()
                else:
                    job.wait()
                    if job.failure is not None:
                        raise job.failure
            except BaseException as exc:
                client._result.set_exception(exc)
                _finish_collect_buffers(job, exc)
                return
            client._result.set_result(JobExecutionResult(job.job_id, job.net_runtime_ms, {}))
            _finish_collect_buffers(job, None)

        thread = threading.Thread(target=run, name=f"flinklet-job-{job.job_id[:8]}", daemon=True)
        client = JobClient(job, name, thread)
        holder["client"] = client
        thread.start()
        return client

    def close(self) -> None:
        self._transformations = []


def _finish_collect_buffers(job: LocalJob, error: BaseException | None) -> None:
    from flinklet._private.exec.executor import collect_buffer
    from flinklet._private.exec.sinks import CollectSinkOperator

    deployment = getattr(job, "deployment", None)
    if deployment is not None and hasattr(deployment, "operators_by_uid"):
        for op in deployment.operators_by_uid.values():
            if isinstance(op, CollectSinkOperator):
                collect_buffer(op.buffer_id).finish(error)


class _SourceStream(DataStream[Any]):
    """A source followed by its timestamp/watermark operator: operator properties such as
    ``set_parallelism``/``uid``/``name`` apply to the source as well."""

    def __init__(
        self, env: StreamExecutionEnvironment, wt: Transformation, source: Transformation
    ) -> None:
        super().__init__(env, wt)
        self._source = source

    def set_parallelism(self, parallelism: int) -> DataStream[Any]:
        super().set_parallelism(parallelism)
        self._source.parallelism = parallelism
        return self

    def uid(self, uid: str) -> DataStream[Any]:
        self._source.uid = uid
        self._t.uid = f"{uid}-timestamps"
        return self

    def name(self, name: str) -> DataStream[Any]:
        self._source.name = f"Source: {name}"
        return self
