"""Every quality flag the vision code gives can be stored (the ``face_quality`` enum)."""

from shared.db.models import FaceQuality
from shared.vision.quality import Quality


def test_vision_and_database_quality_values_are_the_same() -> None:
    assert [q.value for q in Quality] == [q.value for q in FaceQuality]
