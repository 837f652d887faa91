"""The ``classpulse`` command line."""
