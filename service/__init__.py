"""The study service: FastAPI in front of the study engine (``studies``), which it imports and
which never imports it.

Owns: one ``Settings`` (``settings``), the app and its routes (``app``, ``routes/``, ``deps``,
``schemas`` by direction, ``errors`` mapped to HTTP only at the routes), the behaviour free of
HTTP (``core.StudyService``, with ``reads`` and ``lifecycle``; ``views``, ``read_cache``,
``links``), Ray Jobs (``jobs``), the reconciler loop (``reconciler``), what runs beside the
API (``runtime``; ``processes/``: the embedded Ray head, the MLflow UI, the process helper) and
its commands (``cli/``). Only here is fastapi imported; of Ray, only the Jobs API
(``jobs``) and the embedded head's setup (``processes.local_ray``).
"""
