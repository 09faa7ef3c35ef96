# syntax=docker/dockerfile:1
# One image for every role, chosen by the command (README "Deploy"; docker-compose.yml):
#   worker   celery -A worker worker --loglevel INFO     (the default; queues and pool size
#            from DISPATCHER_WORKER_QUEUES and DISPATCHER_WORKER_CONCURRENCY)
#   beat     celery -A worker beat --loglevel INFO --schedule /var/lib/dispatcher/celerybeat-schedule
#   flower   celery -A worker flower --port=5555 --address=0.0.0.0   (FLOWER_BASIC_AUTH=user:password)
#   gateway  dispatcher gateway --host 0.0.0.0 --port 8000
#   migrate  dispatcher migrate
# The HEALTHCHECK (`dispatcher health auto`) reads the role from the first process's command.
# tests/deploy/test_image.py repeats the two RUN steps below in a fresh venv.
# Both stages name the same base literally (hadolint cannot see through an ARG in FROM, so an
# ARG would hide a `latest` from it); tests/deploy/test_image.py checks that they agree.

# -- wheels: every dependency as a wheel, pinned by constraints.txt --------------------------
# (all of them ship binary wheels for CPython 3.11 on manylinux: no compiler is needed)
FROM python:3.11-slim-bookworm AS wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
ARG WHEELS=/wheels
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY dispatcher ./dispatcher
COPY templates ./templates
RUN python -m pip wheel --wheel-dir "$WHEELS" --constraint constraints.txt ".[gateway,webpush,flower,postgres]"

# -- runtime: a venv without pip, the Celery entry points, a non-root user ----------------
FROM python:3.11-slim-bookworm AS runtime
ARG WHEELS=/wheels
ARG VENV=/venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python -m venv --without-pip "$VENV" \
    && python -m pip --python "$VENV/bin/python" install --no-index --find-links "$WHEELS" "dispatcher[gateway,webpush,flower,postgres]"
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin dispatcher \
    && install -d -o 10001 -g 10001 /var/lib/dispatcher
WORKDIR /app
COPY worker.py beat_schedule.py ./
USER 10001
# Flower's /metrics and /healthcheck are never behind auth: keep port 5555 on an internal network.
EXPOSE 8000 5555
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["dispatcher", "health", "auto"]
CMD ["celery", "-A", "worker", "worker", "--loglevel", "INFO"]
