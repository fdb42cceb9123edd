#!/bin/bash
# Runs once, when the Postgres volume is first initialised (docker-entrypoint-initdb.d):
# MLflow's database is POSTGRES_DB; Optuna's storage gets its own database, same owner.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE DATABASE optuna OWNER "$POSTGRES_USER";
SQL
