"""What tests, benchmarks and ``classpulse up`` need to stand up a world:
factories for organisations, classes, lessons, students, consents and seeded
events (:mod:`classpulse.harness.factories`), free ports
(:mod:`classpulse.harness.ports`), the services as child processes, their
commands, readiness and stop (:mod:`classpulse.harness.processes`), and servers
of their own: a throwaway Redis and apps served by uvicorn in a thread
(:mod:`classpulse.harness.servers`).

One place, so that a change to the schema or to how a service starts is made
once and not in every test world and benchmark that builds its own rows or
starts its own servers.
"""
