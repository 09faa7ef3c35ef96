# One image for every role: worker, beat, flower, gateway, migrations.
#   docker build -t dispatcher .
#   docker run --env-file .env dispatcher                                   # worker
#   docker run --env-file .env dispatcher celery -A worker beat --loglevel INFO
#   docker run --env-file .env -p 5555:5555 dispatcher celery -A worker flower
#   docker run --env-file .env -p 8000:8000 dispatcher dispatcher gateway --host 0.0.0.0
#   docker run --env-file .env dispatcher dispatcher migrate
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN python -m venv /venv
COPY pyproject.toml constraints.txt README.md ./
COPY dispatcher ./dispatcher
# Every role but Django: the gateway, web push, Flower and PostgreSQL extras.
RUN /venv/bin/pip install -c constraints.txt ".[gateway,webpush,flower,postgres]"

FROM python:3.11-slim-bookworm
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DISPATCHER_TEMPLATES_DIR=/app/templates
RUN useradd --system --uid 10001 --home-dir /app dispatcher
WORKDIR /app
COPY --from=build /venv /venv
COPY worker.py beat_schedule.py ./
COPY templates ./templates
USER 10001
# Flower's /metrics and /healthcheck are never behind auth: keep port 5555 internal.
EXPOSE 8000 5555
CMD ["celery", "-A", "worker", "worker", "--loglevel", "INFO", "-E"]
