# Seedream Playground: the app, installed as a package, serving on port 8000.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PLAYGROUND_DATA_DIR=/data

COPY . /src
RUN pip install /src && rm -rf /src \
    && useradd --create-home --uid 10001 playground \
    && mkdir -p /data && chown playground /data

USER playground
WORKDIR /home/playground
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["seedream-playground", "serve", "--host", "0.0.0.0"]
