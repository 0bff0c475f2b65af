# The GPU host's Prefect worker with isobench installed (docker compose --profile gpu).
# Flow runs are subprocesses of the worker; arms run as containers of the host's Docker
# engine (its socket is mounted) or, with the process runtime, on the GPUs given to this one.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git patch \
    && rm -rf /var/lib/apt/lists/*
COPY . /opt/isobench
RUN pip install --no-cache-dir /opt/isobench
WORKDIR /opt/isobench
