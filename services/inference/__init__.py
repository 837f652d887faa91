"""Inference worker: Celery tasks that turn queued frames into stored face events."""
