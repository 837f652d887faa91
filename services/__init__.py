"""ClassPulse services: ingest, inference and analytics."""
