# syntax=docker/dockerfile:1
#
# The deeptag orchestrator image (used by docker-compose.yml). Two targets:
#   runtime (the default, last stage): `deeptag serve` and every command but the model export
#   export: runtime + the `export` extra (CPU-only torch) for `deeptag models export`
#
#   docker build -t deeptag .                    # runtime
#   docker build --target export -t deeptag-export .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The pyproject range allows the 9.x client, but a 9.x client sends
# `compatible-with=9` headers that an Elasticsearch 8 server rejects (HTTP 400,
# elastic/elasticsearch-py#2927). The compose stack runs Elasticsearch 8, so the image
# keeps the client on 8.x; build with --build-arg ES_CLIENT='elasticsearch[async]>=9,<10'
# for an Elasticsearch 9 server.
ARG ES_CLIENT="elasticsearch[async]>=8.15,<9"

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DEEPTAG_DATA_DIR=/data
# An unprivileged user; /data is its state (a named volume in compose inherits the owner).
RUN groupadd --system --gid 10001 deeptag \
    && useradd --system --uid 10001 --gid deeptag --create-home --home-dir /home/deeptag \
        --shell /usr/sbin/nologin deeptag \
    && install -d -o deeptag -g deeptag /data
WORKDIR /home/deeptag
ENTRYPOINT ["deeptag"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------
# A regular (not editable) wheel of this checkout; .dockerignore keeps the context to the
# three paths copied here.
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM base AS export
ARG ES_CLIENT
# CPU-only torch from PyTorch's own index first (from PyPI, torch brings gigabytes of CUDA
# wheels that an export does not need). Keep this pin equal to the `export` extra's.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY --from=wheel /wheels /wheels
RUN pip install "$(ls /wheels/deeptag-*.whl)[export]" "${ES_CLIENT}" \
    && rm -rf /wheels
USER deeptag
CMD ["models", "export"]

# ---------------------------------------------------------------------------------------------
FROM base AS runtime
ARG ES_CLIENT
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/deeptag-*.whl "${ES_CLIENT}" \
    && rm -rf /wheels
USER deeptag
EXPOSE 8080
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
