"""The seven FER2013 expression labels: the only definition in ClassPulse.

The integer value is the FER2013 ``emotion`` column, so model outputs, stored
events and the data set all index the same way. The names describe a
*displayed expression*, never what a person feels.
"""

from __future__ import annotations

from enum import IntEnum


class Expression(IntEnum):
    """Displayed facial expression, in FER2013 index order."""

    ANGRY = 0
    DISGUST = 1
    FEAR = 2
    HAPPY = 3
    SAD = 4
    SURPRISE = 5
    NEUTRAL = 6

    @property
    def label(self) -> str:
        """The lower-case name used on the wire and in the database."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Expression:
        """Parse a lower-case label such as ``"happy"``; raises ``ValueError``."""
        try:
            return cls[label.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown expression {label!r}; expected one of {', '.join(LABELS)}"
            ) from None


#: Labels in model-output order (index i is ``Expression(i)``).
LABELS: tuple[str, ...] = tuple(e.label for e in Expression)
NUM_CLASSES = len(LABELS)
#: What exports and reports write for a face the model classified too unsurely
#: for a label (its top probability under the model's ``uncertain_below``).
UNCERTAIN = "uncertain"
