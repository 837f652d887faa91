"""xAPI statements to an organisation's Learning Record Store (see docs/integration.md)."""
