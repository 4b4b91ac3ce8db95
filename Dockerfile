# The Pulse image for docker-compose and Docker work pools: the pipeline (Prefect deployments)
# and the dashboard. Two stages: uv and its cache stay in the first; the image holds the locked
# environment and the code that runs, compiled ahead, so a flow run's new process does not
# compile Prefect first (3-10 s each). Tests, benchmarks and docs stay out (.dockerignore).
FROM python:3.11-slim AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv>=0.9,<1"
WORKDIR /app
COPY pyproject.toml uv.lock README.md LICENSE ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev \
    && /opt/venv/bin/python -m compileall -q pulse flows tasks deployments streamlit_app

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
RUN useradd --create-home pulse
USER pulse
