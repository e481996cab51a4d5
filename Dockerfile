# The three images, one target each. Build from the repository root:
#
#   docker build --target server  -t digitserve-server .    # digits-server: serves /models over gRPC on 50051
#   docker build --target trainer -t digitserve-trainer .   # digits-train: trains the models into /models
#   docker build --target client  -t digitserve-client .    # digits: the command-line client (no Tk)
#
# docker-compose.yml builds them so. Each target has a build stage (SERVICE-build) that installs
# on the Python base; the image itself is FROM scratch with only what running it needs.
# The base is a build argument so that machines without a registry can build on a stand-in
# with the same layout (deploy/setup-host.sh makes one); everyone else gets the official image.
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------- what every build stage starts from
FROM ${BASE_IMAGE} AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# An unprivileged user; the volumes' mount points are owned by it so fresh named volumes are too.
# Only the images whose build stage names them carry them over (deploy/runtime_root.py).
RUN groupadd --system --gid 10001 digits \
    && useradd --system --uid 10001 --gid digits --create-home --home-dir /home/digits --shell /usr/sbin/nologin digits \
    && mkdir -p /models /cache/mnist \
    && chown -R digits:digits /models /cache

WORKDIR /build
# The dependencies are listed from pyproject.toml alone, so code changes reuse their layer.
COPY pyproject.toml ./
COPY deploy/build-stage.sh deploy/runtime_root.py deploy/

# ---------------------------------------------------------------- what every image starts from
FROM scratch AS runtime
ENV PATH=/usr/local/bin:/usr/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001

# ---------------------------------------------------------------- the server
FROM base AS server-build
RUN --mount=type=cache,target=/root/.cache/pip deploy/build-stage.sh dependencies server
COPY digitserve/ digitserve/
COPY server/ server/
RUN --mount=type=cache,target=/root/.cache/pip \
    deploy/build-stage.sh code "server.main, server.healthcheck, digitserve.estimators" /models /tmp

FROM runtime AS server
COPY --from=server-build /runtime /
ENV DIGITS_MODELS_DIR=/models
# The import check again, without the base: a library left behind fails the build here.
RUN ["python", "-I", "-B", "-c", "import server.main, server.healthcheck, digitserve.estimators"]
WORKDIR /home/digits
EXPOSE 50051
STOPSIGNAL SIGTERM
ENTRYPOINT ["digits-server"]

# ---------------------------------------------------------------- the trainer
# MNIST comes from the cache /cache/mnist, downloaded into it when missing. The clients' connection
# goes in too: digits-train --notify asks the server to reload through it.
FROM base AS trainer-build
RUN --mount=type=cache,target=/root/.cache/pip deploy/build-stage.sh dependencies trainer
COPY digitserve/ digitserve/
COPY trainer/ trainer/
COPY clients/ clients/
RUN --mount=type=cache,target=/root/.cache/pip \
    deploy/build-stage.sh code "trainer.main, trainer.assembly, trainer.calibration, trainer.evaluation" /models /cache /tmp

FROM runtime AS trainer
COPY --from=trainer-build /runtime /
ENV DIGITS_MODELS_DIR=/models \
    DIGITS_CACHE_DIR=/cache
RUN ["python", "-I", "-B", "-c", "import trainer.main, trainer.assembly, trainer.calibration, trainer.evaluation"]
WORKDIR /home/digits
ENTRYPOINT ["digits-train"]
# Train the default models unless they are all there already (docker-compose.yml says the same).
CMD ["--if-missing"]

# ---------------------------------------------------------------- the command-line client
FROM base AS client-build
RUN --mount=type=cache,target=/root/.cache/pip deploy/build-stage.sh dependencies clients
COPY digitserve/ digitserve/
COPY clients/ clients/
RUN --mount=type=cache,target=/root/.cache/pip \
    deploy/build-stage.sh code "clients.cli, clients.inputs" /tmp

FROM runtime AS client
COPY --from=client-build /runtime /
RUN ["python", "-I", "-B", "-c", "import clients.cli, clients.inputs"]
WORKDIR /home/digits
ENTRYPOINT ["digits"]
CMD ["--help"]
