"""Names of the Celery tasks: the contract between ingest, beat and the inference worker.

Defined once here: ingest publishes ``PROCESS_FRAME`` without importing the
worker's code, and the worker registers its tasks under these names. Every task
goes to ``shared.schemas.FRAME_QUEUE``; ``process_frame`` takes one keyword
argument, ``ref`` = ``FrameRef.model_dump(mode="json")``, and its task id is the
frame id.
"""

from __future__ import annotations

PROCESS_FRAME = "classpulse.process_frame"
EXPIRE_FRAMES = "classpulse.expire_frames"
#: Sent by ``classpulse up`` when it restarted its embedded Redis (which keeps nothing).
EXPIRE_LOST_FRAMES = "classpulse.expire_lost_frames"
PURGE_OLD_EVENTS = "classpulse.purge_old_events"
CREATE_PARTITIONS = "classpulse.create_partitions"
REQUEUE_ORPHANS = "classpulse.requeue_orphaned_frames"
SEND_XAPI = "classpulse.send_xapi_statements"
