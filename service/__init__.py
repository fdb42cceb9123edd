"""The study service: FastAPI in front of the study engine."""
