# One image definition for every role of ClassPulse.
#   docker build --target api .     ingest, analytics and `classpulse migrate` (no TensorFlow, no OpenCV)
#   docker build --target worker .  inference workers and Celery beat (OpenCV, ONNX Runtime, the model)
# docker-compose.yml builds both.

FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN useradd --system --create-home --home-dir /home/classpulse classpulse
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY classpulse ./classpulse
COPY training ./training

FROM base AS api
# Editable install: the code, migrations and static pages are used from /app.
RUN pip install -e '.[api]'
USER classpulse
EXPOSE 8000 8001

FROM base AS worker
RUN pip install -e '.[worker]'
# The model artifact the workers serve (metadata.json + model.onnx).
COPY models/default ./models/default
ENV CLASSPULSE_MODEL_DIR=/app/models/default
RUN mkdir -p /data && chown classpulse /data
USER classpulse
