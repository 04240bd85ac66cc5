# The hpsearch image for docker-compose.yml and for the pods of `hpsearch kubernetes`: workers, the
# dashboard and the gRPC proxy. Both give only hpsearch's arguments (compose's `command:`, a pod's
# `args:`), which follow the entrypoint below.
# PyPI's torch wheels for Linux carry their own CUDA libraries, so a slim Python base is enough;
# the host needs only the NVIDIA driver and container toolkit.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# README.md* matches nothing rather than failing when the README is absent; setup.cfg reads it.
COPY pyproject.toml setup.cfg README.md* ./
COPY search/ search/
COPY trainer/ trainer/
RUN pip install ".[grpc]"
COPY studies/ studies/

# A named volume starts as a copy of the image's folder, owner included: made here, they are
# writable by the non-root user that runs everything.
RUN useradd --create-home --uid 1000 hpsearch \
    && mkdir -p /cache /checkpoints /artifacts \
    && chown hpsearch:hpsearch /cache /checkpoints /artifacts
USER hpsearch

ENTRYPOINT ["hpsearch"]
CMD ["--help"]
