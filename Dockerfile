# One image definition for every role of ClassPulse.
#   docker build --target api .     ingest, analytics and `classpulse migrate` (no TensorFlow, no OpenCV)
#   docker build --target worker .  inference workers and Celery beat (OpenCV, ONNX Runtime, the model)
# docker-compose.yml builds both.

FROM python:3.11-slim AS base
# uv installs each role's packages at the versions uv.lock pins, into /opt/venv.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN useradd --system --create-home --home-dir /home/classpulse classpulse
# The version uv.lock pins for uv itself (tests/test_lock.py checks).
RUN pip install uv==0.13.9
COPY pyproject.toml uv.lock README.md ./
COPY shared ./shared
COPY services ./services
COPY classpulse ./classpulse
COPY training ./training
# The face detectors' weights: the workers run them, and ingest serves BlazeFace
# to the classroom page, which finds faces with them as the workers do.
COPY models/detectors ./models/detectors

FROM base AS api
# Editable install: the code, migrations and static pages are used from /app.
RUN uv sync --locked --extra api
USER classpulse
EXPOSE 8000 8001

FROM base AS worker
RUN uv sync --locked --extra worker
# The model artifacts the workers serve (metadata.json + model.onnx): the default,
# and the fast one that CLASSPULSE_MODEL_DIR=/app/models/fast selects.
COPY models/default ./models/default
COPY models/fast/metadata.json models/fast/model.onnx ./models/fast/
ENV CLASSPULSE_MODEL_DIR=/app/models/default
RUN mkdir -p /data && chown classpulse /data
USER classpulse
