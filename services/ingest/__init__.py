"""Ingest API: frames from classroom clients in, validated, stored briefly, queued."""
