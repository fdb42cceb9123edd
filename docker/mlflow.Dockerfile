# A small MLflow tracking server: mlflow 3.17.2 (the client's version) with the Postgres driver.
#
#   docker build -f docker/mlflow.Dockerfile -t radam-robustness-mlflow docker
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "mlflow==3.17.2" "psycopg2-binary>=2.9" \
    && useradd --create-home --uid 1000 mlflow \
    && mkdir -p /mlartifacts \
    && chown mlflow:mlflow /mlartifacts

USER mlflow
EXPOSE 5000
# The command (backend store, artifacts, allowed hosts) is set in docker-compose.yml.
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]
