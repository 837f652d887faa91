"""SQL over face events: all aggregation happens in PostgreSQL, never row by row in Python."""
