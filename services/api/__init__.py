"""HTTP plumbing both APIs share: the error shape, health checks, required settings."""
