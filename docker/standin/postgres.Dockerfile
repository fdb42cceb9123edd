# Stand-in for postgres:16-bookworm where no registry answers (scripts/docker_base_images.sh
# builds it): Debian bookworm's PostgreSQL 15 behind docker-entrypoint.sh, which follows the
# official image's contract: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB on the first start
# of an empty PGDATA, then /docker-entrypoint-initdb.d/*.sh and *.sql; password auth over TCP.
FROM radam-robustness-standin/debian:bookworm

# No cluster made by the package's postinst: the entrypoint makes PGDATA's on first start.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /docker-entrypoint-initdb.d /var/run/postgresql /var/lib/postgresql/data \
    && chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql \
    && chmod 3777 /var/run/postgresql

ENV LANG=C.UTF-8 \
    PG_MAJOR=15 \
    PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data

COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh

VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
# Postgres's fast shutdown, as in the official image.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
