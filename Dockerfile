# syntax=docker/dockerfile:1
#
# The deeptag orchestrator image (used by docker-compose.yml). Two targets:
#   runtime (the default, last stage): `deeptag serve` and every command but the model export
#   export: runtime + the `export` extra (CPU-only torch) for `deeptag models export`
#
#   docker build -t deeptag .                    # runtime
#   docker build --target export -t deeptag-export .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

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
# CPU-only torch from PyTorch's own index first (from PyPI, torch brings gigabytes of CUDA
# wheels that an export does not need). Keep this pin equal to the `export` extra's.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY --from=wheel /wheels /wheels
RUN pip install "$(ls /wheels/deeptag-*.whl)[export]" \
    && rm -rf /wheels
USER deeptag
CMD ["models", "export"]

# ---------------------------------------------------------------------------------------------
FROM base AS runtime
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/deeptag-*.whl \
    && rm -rf /wheels
USER deeptag
EXPOSE 8080
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
