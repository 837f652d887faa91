"""Request and response bodies of the ingest API (not rows, not queue messages)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

ExternalId = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")
#: Largest frame sequence number: frames.seq is a PostgreSQL bigint.
MAX_SEQ = 2**63 - 1
#: A client's frame sequence number (HTTP, batch and WebSocket alike).
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
#: Free text: anything PostgreSQL can store in a text column (no NUL character).
TEXT_PATTERN = r"^[^\x00]*$"


_CLIENT_DETECTION = (
    "The classroom page finds and crops faces itself and sends only the crops (true) or "
    "sends whole frames (false); null follows the deployment's `CLASSPULSE_CLIENT_DETECTION`"
)


class ClassIn(BaseModel):
    external_id: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)
    title: str = Field(min_length=1, max_length=300, pattern=TEXT_PATTERN)
    client_detection: bool | None = Field(None, description=_CLIENT_DETECTION)


class ClassPatch(BaseModel):
    """The fields to change; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, min_length=1, max_length=300, pattern=TEXT_PATTERN)
    client_detection: bool | None = Field(None, description=_CLIENT_DETECTION)

    @model_validator(mode="after")
    def _title_not_null(self) -> ClassPatch:
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null")
        return self


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    external_id: str
    title: str
    client_detection: bool | None = Field(description=_CLIENT_DETECTION)
    created_at: dt.datetime


class LessonIn(BaseModel):
    title: str = Field(min_length=1, max_length=300, pattern=TEXT_PATTERN)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    is_demo: bool = Field(
        default=False,
        description="A demonstration with simulated students: the dashboard labels it and "
        "no xAPI statements are sent for it",
    )

    @model_validator(mode="after")
    def _ends_after_start(self) -> LessonIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class LessonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    class_id: uuid.UUID
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    is_demo: bool


class EnrolIn(BaseModel):
    external_ids: list[Annotated[str, ExternalId]] = Field(
        min_length=1,
        max_length=1000,
        description="Pseudonymous LMS ids (never names or e-mail addresses)",
    )


class StudentOut(BaseModel):
    id: uuid.UUID
    external_id: str


class EnrolOut(BaseModel):
    class_id: uuid.UUID
    students: list[StudentOut]


#: What the per-student permission of a key covers.
PER_STUDENT_HELP = (
    "May the key read per-student data: one student's timeline, the summary's "
    "per-student rows and event exports. Without it the key reads class aggregates only "
    "(buckets of at least the minimum group size). Only an LMS key that has the "
    "permission itself can grant it."
)


class TeacherKeyIn(BaseModel):
    name: str = Field("teacher", min_length=1, max_length=200, pattern=TEXT_PATTERN)
    per_student: bool = Field(False, description=PER_STUDENT_HELP)


class TeacherKeyOut(BaseModel):
    key: str = Field(description="Shown once; only its hash is stored")
    prefix: str
    class_id: uuid.UUID
    name: str
    per_student: bool = Field(description=PER_STUDENT_HELP)


class ConsentOut(BaseModel):
    """One party's consent after a change; frames are processed only when both parties agree."""

    student_external_id: str
    class_id: uuid.UUID
    lesson_id: uuid.UUID | None = Field(description="None: the consent covers the whole class")
    party: Literal["school", "student"] = Field(
        description="Whose consent this is: the school's (LMS key) or the student's own (token)"
    )
    active: bool = Field(description="Whether this party's consent is now given for this scope")
    processing: bool | None = Field(
        description=(
            "For a lesson: whether frames of this student are processed now, which needs "
            "both the school's permission and the student's own consent. None for a class."
        )
    )


class MarkerIn(BaseModel):
    at: AwareDatetime
    kind: Literal["slide", "topic"]
    label: str = Field(min_length=1, max_length=300, pattern=TEXT_PATTERN)


class MarkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    lesson_id: uuid.UUID
    at: dt.datetime
    kind: str
    label: str


class StudentTokenOut(BaseModel):
    token: str
    expires_at: dt.datetime
    classroom_url: str = Field(description="The classroom page, with the token in its fragment")


class ClientDetectionOut(BaseModel):
    """How the classroom page finds and crops faces, so that only crops leave the device.

    The page runs ``model_url`` (the workers' BlazeFace weights) as the workers
    do and sends each frame's aligned crops as a face-crops body
    (``shared.face_crops``, Content-Type ``application/vnd.classpulse.face-crops.v1``).
    """

    detector: str = Field(description="The BlazeFace variant the workers run")
    model_url: str
    input_size: int
    strides: list[int] = Field(description="SSD anchor strides, one per anchor layer")
    interpolated_anchor: bool = Field(description="Two anchors per cell and layer (short range)")
    min_score: float
    suppression_iou: float = Field(description="Weighted NMS merges boxes overlapping above this")
    raw_score_limit: float = Field(description="Raw scores are clipped to +-this before sigmoid")
    min_face_fraction: float = Field(description="Smallest face, of the frame's shorter side")
    fer_keypoints: list[list[float]] = Field(
        description="Eyes, nose tip, mouth centre of the aligned 48 px face"
    )
    model_input_side: int = Field(description="Side of the classifier's input (48)")
    crop_side: int = Field(description="Side of each crop sent (the 48 px input, supersampled)")
    max_faces: int = Field(description="Most faces one frame may carry")


class MeOut(BaseModel):
    student_external_id: str
    lesson_id: uuid.UUID
    lesson_title: str
    consent_active: bool = Field(
        description="Frames are processed: both the school's permission and the student's consent"
    )
    own_consent: bool = Field(description="The student's own consent for this lesson is given")
    school_permission: bool = Field(description="The school permits processing in this lesson")
    lesson_live: bool
    starts_at: dt.datetime
    ends_at: dt.datetime
    frame_interval_seconds: float = Field(description="Suggested time between frames")
    client_detection: ClientDetectionOut | None = Field(
        None,
        description="Set when the page should send face crops (the class's `client_detection`, "
        "else `CLASSPULSE_CLIENT_DETECTION`); None: whole frames",
    )


class FrameAccepted(BaseModel):
    frame_id: uuid.UUID
    status: Literal["queued", "repeated"] = Field(
        description="`queued`: this request's frame is queued; `repeated`: a frame with this "
        "`seq` was accepted before (a retry), `frame_id` is that frame's and nothing more was "
        "queued"
    )
    seq: int


class BatchItem(BaseModel):
    seq: int | None
    status: int = Field(description="HTTP status this frame would have had on its own")
    frame_id: uuid.UUID | None = None
    repeated: bool = Field(
        False, description="A 202 for a `seq` accepted before: `frame_id` is that frame's"
    )
    error: dict[str, str | None] | None = None
    retry_after: int | None = None


class BatchOut(BaseModel):
    results: list[BatchItem]


class ErasureOut(BaseModel):
    """What an erasure removed; the same counts are written to the audit log."""

    student_id: uuid.UUID
    external_id: str
    face_events: int
    frames: int
    frame_bytes: int = Field(description="Queued frames' bytes deleted from Redis")
    consents: int
    enrolments: int
    erased_at: dt.datetime
