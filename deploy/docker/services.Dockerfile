# Redis, Prometheus and Alertmanager from Debian's packages, the same programs as the local
# stack (`fraudstream stack up` runs Debian's redis-server, prometheus and
# prometheus-alertmanager). One image, three services: compose gives each its command.
# Context: deploy/docker. BASE_IMAGE as in deploy/docker/Dockerfile.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       redis-server prometheus prometheus-alertmanager wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data /prometheus /alertmanager \
    && chown prometheus:prometheus /prometheus /alertmanager \
    && chown redis:redis /data
