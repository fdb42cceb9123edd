"""The processes the service starts, watches and stops.

Owns: ``supervise`` (the one process helper: spawn in a session of its own, wait until
healthy, stop by SIGTERM then SIGKILL to the group; also what the tests use), ``local_ray``
(the embedded Ray head, recorded in ``<home>/ray-head.json``), ``mlflow_ui`` (the MLflow UI
server) and ``service_process`` (``ServiceProcess``: the service itself as a child process,
for the quickstart, the tests and the benches).

May import: ``studies.errors``, Ray's Jobs API and token setup (``local_ray``), the standard
library. Nothing else of the service.
"""
