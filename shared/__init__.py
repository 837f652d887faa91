"""ClassPulse domain package: labels, schemas, settings, database, vision."""
