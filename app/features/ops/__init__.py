"""Running the app, seen from outside: readiness probes (`probes`) and the figures the
database gives Prometheus (`job_gauges`). The process's own counters live in
app/core/metrics.py, where every layer can count."""
