"""Runs compose.yaml for real on a machine that reaches no image registry (scripts/compose-check).

1. Lints: hadolint on the Dockerfile and compose-lint on compose.yaml, installed from PyPI
   into a virtualenv of the run's own; a high finding fails the check (a linter that
   cannot be installed is said, and skipped). `docker-compose config` must pass with and
   without the minio profile, and render no blank variable.
2. The engine: a running Docker daemon is used as it is; otherwise one is started for this
   run alone (vfs storage, no bridge, no iptables, its own data root and socket) and
   stopped at the end with everything it held.
3. Images, never pulled: a base from Debian's packages (debootstrap of this machine's
   release, with python3 and its venv module), imported; the app's image built from the
   repository's Dockerfile on that base, pip reading wheels this machine downloaded
   (served on loopback), never an index. The build context is checked first: a .env, a
   data dir, a database, an export or a backup lying in the checkout must not reach it.
4. The stack: compose.yaml with compose.ci.yaml (its comments say why each change), as
   two projects of one web and one worker container each, against PostgreSQL (the suite's
   own kind of server), moto's S3 server and the PixelDojo emulator, all on the host's
   loopback. The first admin is added as the README says; the probes must go green; 20
   jobs go in through both web containers; one worker container is killed with
   `docker kill` while it holds jobs. Afterwards every job is stored exactly once (rows
   and objects), PixelDojo saw 20 jobs, and each image reads byte-identical from both web
   containers.

Everything the run started is stopped, and everything it made is removed, whatever
happens. It prints what it did, step by step, with the time each took.
"""
