"""One analysed image or video frame of ``classpulse analyze``, as a line, JSON or report row.

Shared by the command (``analyze_commands``) and its report (``analyze_report``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.labels import LABELS

if TYPE_CHECKING:  # the pipeline loads OpenCV: not at the command line's start
    from shared.vision.pipeline import FrameResult

NO_FACE = "No face identified"


@dataclass(frozen=True)
class Sample:
    """One analysed image: where it came from and what was found."""

    source: str
    seconds: float | None
    result: FrameResult

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "time_s": self.seconds,
            "width": self.result.width,
            "height": self.result.height,
            "faces": [
                {
                    "box": [f.box.x, f.box.y, f.box.w, f.box.h],
                    "quality": f.quality.value,
                    "label": f.label.label if f.label is not None else None,
                    "uncertain": f.uncertain,
                    "confidence": round(f.confidence, 4) if f.confidence is not None else None,
                    "probabilities": (
                        [round(p, 4) for p in f.probabilities] if f.probabilities else None
                    ),
                    # Head direction (degrees) and the facing-the-screen call; null
                    # without keypoints (Haar).
                    "yaw": round(f.head_pose.yaw, 1) if f.head_pose else None,
                    "pitch": round(f.head_pose.pitch, 1) if f.head_pose else None,
                    "facing": f.facing,
                }
                for f in self.result.faces
            ],
        }

    def line(self) -> str:
        where = f"{self.seconds:8.1f}s" if self.seconds is not None else self.source
        if self.result.no_face:
            return f"{where}  0 faces  {NO_FACE}"
        parts = []
        for face in self.result.faces:
            if face.label is not None and face.confidence is not None:
                parts.append(f"{face.label.label} ({face.confidence:.0%})")
            elif face.uncertain and face.probabilities is not None:
                top = LABELS[face.probabilities.index(max(face.probabilities))]
                parts.append(f"uncertain (top: {top} {max(face.probabilities):.0%})")
            elif face.quality.value != "ok":
                parts.append(f"unlabelled: {face.quality.value.replace('_', ' ')}")
            else:
                parts.append("face (expression inference off)")
        return f"{where}  {len(self.result.faces)} face(s)  " + ", ".join(parts)
