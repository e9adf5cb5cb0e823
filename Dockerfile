# Seedream Playground: the app with PostgreSQL's driver and the S3 client ([postgres,s3]),
# serving on port 8000 as a numeric, unprivileged user. docs/team-server.md runs it.
#
# BASE is any image with python3 and its venv module: the official Python image by default,
# pinned to a release; scripts/compose-check builds on one made from Debian's packages.
ARG BASE=python:3.11.12-slim-bookworm

FROM ${BASE} AS build
# Where pip finds packages: PyPI unless these say otherwise (a mirror, or a wheelhouse
# served on loopback, as scripts/compose-check does).
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# The dependencies first, from the lock alone and checked against its hashes: a change to
# the code reuses this layer.
COPY requirements.lock /build/requirements.lock
RUN python3 -m venv /opt/playground \
    && /opt/playground/bin/pip install --no-deps --require-hashes -r /build/requirements.lock
# Then the app: only the package's own files (.dockerignore lets nothing else in), in this
# stage alone, which the image below does not keep.
COPY pyproject.toml README.md /build/src/
COPY app /build/src/app
RUN /opt/playground/bin/pip install --no-deps /build/src

FROM ${BASE}
ENV PATH=/opt/playground/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PLAYGROUND_DATA_DIR=/data
# Numeric, so an orchestrator can tell it is not root without reading /etc/passwd
# (Kubernetes' runAsNonRoot).
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin playground \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /opt/playground /opt/playground
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-m", "app.cli.probe", "http://127.0.0.1:8000/readyz"]
CMD ["seedream-playground", "serve", "--host", "0.0.0.0"]
