"""The colours of the seven displayed expressions, face presence, facing the screen and
uncertain faces: one palette.

The teacher dashboard reads it from the analytics API (``/palette.json``) and
``classpulse analyze --report`` draws its chart with it, so an expression has
the same colour everywhere. Colours are keyed by label, in FER2013 order.
"""

from __future__ import annotations

#: One colour per expression label, distinguishable side by side on white.
EXPRESSION_COLOURS: dict[str, str] = {
    "angry": "#d1495b",
    "disgust": "#7b8d3a",
    "fear": "#8e5ea2",
    "happy": "#edae49",
    "sad": "#3d6fb6",
    "surprise": "#00a6a6",
    "neutral": "#8a8f98",
}
#: The share of samples with a face, drawn apart from the expressions.
FACE_PRESENCE_COLOUR = "#4b5563"
#: The share of faces facing the screen, drawn beside face presence (darker, dotted).
FACING_SCREEN_COLOUR = "#1f2933"
#: The share of classified faces too uncertain for a label (light, dotted).
UNCERTAIN_COLOUR = "#9ca3af"


def palette() -> dict[str, object]:
    """The palette as the dashboard reads it: ``{"expressions": {label: colour}, ...}``."""
    return {
        "expressions": dict(EXPRESSION_COLOURS),
        "face_presence": FACE_PRESENCE_COLOUR,
        "facing_screen": FACING_SCREEN_COLOUR,
        "uncertain": UNCERTAIN_COLOUR,
    }
