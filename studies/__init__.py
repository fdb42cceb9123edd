"""The study engine: a spec in, Ray Tune runs every trial, MLflow holds the record."""
