"""The JobManager's REST API: Flink's paths and JSON shapes, served by FastAPI/uvicorn.

::

    service.py      ClusterService: what the REST app asks of the cluster (jobs, submit,
                    TaskManagers, configuration, readiness); JobLike: what a job exposes
    minicluster.py  MiniClusterService: runs submitted programs in this process
    program.py      runs a job program (``file.py`` or ``module:function``)
    models.py       pydantic request/response models (the OpenAPI schema)
    views.py        job-likes -> Flink's JSON shapes (pure functions)
    app.py          create_app(service) -> FastAPI
    server.py       RestServer: uvicorn on a background thread
    client.py       RestClient: the CLI's (httpx) client of this API

Only ``app.py``, ``server.py`` and ``client.py`` need the ``cluster`` extra (fastapi,
uvicorn, httpx); importing this package does not.
"""
