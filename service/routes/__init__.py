"""The HTTP routes, one module per resource: ``health``, ``presets``, ``studies``. A route reads
its request, calls ``StudyService`` (``service.core``) and shapes the answer
(``service.schemas``); the behaviour is core's, the mapping of domain errors to HTTP the app's
(``service.app``, ``service.errors``)."""
