"""Head yaw and pitch from a detector's four keypoints, and the "facing the screen" call.

A generic face, in units of the distance between the eyes, is seen under
weak perspective (a face is small against its distance to a webcam). Its
eyes lie at depth 0; the nose tip sits below them and in front, the mouth
centre further below and a little in front. Once the roll is removed (the
eye line made level):

* pitch (nodding) changes how far the nose sits down the eyes-to-mouth line:
  a head tilted back lifts the protruding nose towards the eyes;
* yaw (turning) slides the nose sideways off the eyes' midpoint by its depth
  times sin(yaw), while the eyes close up by cos(yaw).

Both are ratios of keypoint distances, so the face's size and distance drop
out, and each is solved in closed form (no iteration, a few microseconds per
face). The drops below the eyes are the medians of the FER2013 faces
(``shared.vision.align.FER_KEYPOINTS``, i.e. of frontal faces); the depths
are a typical adult face's (nose tip about 28 mm in front of the eyes for
63 mm between them). The angles are estimates of a few degrees' accuracy for
near-frontal faces and coarser beyond 45 degrees, where the far eye is hidden
and detectors guess its keypoint.

"Facing the screen" means only that the head points at the camera's side of
the room, within the calibrated limits below; it says nothing about where
the eyes look or what the person attends to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.vision.align import FER_KEYPOINTS
from shared.vision.detect import Keypoints

_EYE_DISTANCE = float(FER_KEYPOINTS[1, 0] - FER_KEYPOINTS[0, 0])
_EYE_ROW = float(FER_KEYPOINTS[0, 1])
#: Nose tip and mouth centre below the eyes' midpoint in a frontal face, in
#: eye distances (FER2013 medians: 0.58 and 1.05).
NOSE_DROP = (float(FER_KEYPOINTS[2, 1]) - _EYE_ROW) / _EYE_DISTANCE
MOUTH_DROP = (float(FER_KEYPOINTS[3, 1]) - _EYE_ROW) / _EYE_DISTANCE
#: Nose tip and mouth centre in front of the eyes, in eye distances (adult
#: anthropometry: the nose tip about 28 mm, the lips about 9 mm for 63 mm
#: between the pupils).
NOSE_DEPTH = 0.45
MOUTH_DEPTH = 0.15

#: Largest |yaw| (degrees) of a face still called facing the screen. On the
#: labelled media faces (tests/fixtures/facing.md) the faces labelled facing
#: reach |yaw| 23 (RetinaFace) or 28 (one face, BlazeFace full range) and all
#: but a few labelled turned away start at 24. 25 sits between them and calls
#: 97 % of either detector's faces as labelled; 20 does as well on these
#: faces, 30 calls four more RetinaFace faces that turn away "facing".
MAX_FACING_YAW = 25.0
#: Pitch range (degrees) of a face still called facing. The labelled facing
#: faces lie between -18 and +24 (portraits read as slightly chin-up: the
#: photographed faces sit a little higher than the FER2013 medians); the set
#: has few bowed heads, so these limits are the least tested part of the call.
MAX_FACING_PITCH_UP = 25.0
MAX_FACING_PITCH_DOWN = 25.0


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head angles in degrees, from the camera's point of view.

    ``yaw`` is positive when the nose points towards the image's right (the
    person's own left in an unmirrored frame), ``pitch`` positive when the
    chin is raised and negative when the head bows.
    """

    yaw: float
    pitch: float


@dataclass(frozen=True, slots=True)
class FacingLimits:
    """How far a head may turn or nod and still be called facing the screen."""

    max_yaw: float = MAX_FACING_YAW
    max_pitch_up: float = MAX_FACING_PITCH_UP
    max_pitch_down: float = MAX_FACING_PITCH_DOWN


def head_pose(kp: Keypoints) -> HeadPose:
    """Yaw and pitch of a face from its eyes, nose tip and mouth centre."""
    (rx, ry), (lx, ly) = kp.right_eye, kp.left_eye
    ax, ay = lx - rx, ly - ry
    eyes = math.hypot(ax, ay)
    if eyes <= 0.0:
        # Both eyes on one point: a full profile as far as the keypoints tell.
        return HeadPose(90.0, 0.0)
    ux, uy = ax / eyes, ay / eyes  # along the eye line
    vx, vy = -uy, ux  # down the face, perpendicular to it
    mx, my = (rx + lx) / 2.0, (ry + ly) / 2.0
    nose_x, nose_y = kp.nose[0] - mx, kp.nose[1] - my
    mouth_x, mouth_y = kp.mouth[0] - mx, kp.mouth[1] - my
    nose_down = nose_x * vx + nose_y * vy
    mouth_down = mouth_x * vx + mouth_y * vy
    # A mouth level with the eyes or above them fits no head pose: a bowed head as
    # far as the call goes, so such keypoints are never called facing.
    pitch = _pitch(nose_down / mouth_down) if mouth_down > 0.0 else -90.0
    # Depth of the nose in front of the eyes once the head has nodded.
    rad = math.radians(pitch)
    depth = NOSE_DROP * math.sin(rad) + NOSE_DEPTH * math.cos(rad)
    sideways = (nose_x * ux + nose_y * uy) / eyes
    yaw = math.degrees(math.atan2(sideways, max(depth, 1e-6)))
    return HeadPose(yaw, pitch)


def _pitch(ratio: float) -> float:
    """Pitch (degrees) at which the nose sits ``ratio`` of the way from eyes to mouth.

    Solves (NOSE_DROP cos p - NOSE_DEPTH sin p) = ratio (MOUTH_DROP cos p - MOUTH_DEPTH sin p).
    """
    ahead = ratio * MOUTH_DROP - NOSE_DROP
    behind = ratio * MOUTH_DEPTH - NOSE_DEPTH
    if behind >= 0.0:  # nose at or below the mouth: no head pose explains it
        return -90.0
    return math.degrees(math.atan(ahead / behind))


def is_facing(pose: HeadPose, limits: FacingLimits | None = None) -> bool:
    """Whether the head is turned towards the camera within ``limits``."""
    limits = limits or FacingLimits()
    return (
        abs(pose.yaw) <= limits.max_yaw
        and -limits.max_pitch_down <= pose.pitch <= limits.max_pitch_up
    )
