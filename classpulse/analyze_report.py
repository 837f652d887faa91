"""The offline report of ``classpulse analyze --report``: timeline files and a chart.

The chart shows, per time window, the share of each displayed expression
among labelled faces, and the share of samples where a face was present.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from shared.labels import LABELS
from shared.palette import EXPRESSION_COLOURS, FACE_PRESENCE_COLOUR, FACING_SCREEN_COLOUR

if TYPE_CHECKING:
    from classpulse.analyze_sample import Sample

#: Samples per chart window when the video is long enough.
SAMPLES_PER_WINDOW = 3


#: One row per face (or per sample without one); yaw and pitch in degrees, empty
#: (as facing) for faces without keypoints.
CSV_COLUMNS = (
    "time_s",
    "faces",
    "face_index",
    "label",
    "confidence",
    "quality",
    "yaw",
    "pitch",
    "facing",
)


def write_report(samples: list[Sample], out: Path, every: float) -> list[Path]:
    """Write timeline.csv, timeline.json and chart.png into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "timeline.csv", out / "timeline.json", out / "chart.png"]
    with paths[0].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for sample in samples:
            if sample.result.no_face:
                writer.writerow([sample.seconds, 0] + [""] * (len(CSV_COLUMNS) - 2))
            for index, face in enumerate(sample.result.faces):
                writer.writerow(
                    [
                        sample.seconds,
                        len(sample.result.faces),
                        index,
                        face.label_text or "",
                        f"{face.confidence:.4f}" if face.confidence is not None else "",
                        face.quality.value,
                        f"{face.head_pose.yaw:.1f}" if face.head_pose else "",
                        f"{face.head_pose.pitch:.1f}" if face.head_pose else "",
                        "" if face.facing is None else face.facing,
                    ]
                )
    paths[1].write_text(
        json.dumps([s.to_json() for s in samples], indent=1) + "\n", encoding="utf-8"
    )
    _chart(samples, paths[2], every)
    return paths


def _chart(samples: list[Sample], path: Path, every: float) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    window = every * SAMPLES_PER_WINDOW if len(samples) >= 2 * SAMPLES_PER_WINDOW else every
    starts: list[float] = []
    shares: dict[str, list[float]] = {label: [] for label in LABELS}
    presence: list[float] = []
    facing: list[float] = []
    groups: dict[int, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(int((sample.seconds or 0.0) // window), []).append(sample)
    for key in sorted(groups):
        group = groups[key]
        starts.append(key * window)
        counts = Counter(
            face.label.label for s in group for face in s.result.faces if face.label is not None
        )
        labelled = sum(counts.values())
        for label in LABELS:
            shares[label].append(counts[label] / labelled if labelled else 0.0)
        presence.append(sum(not s.result.no_face for s in group) / len(group))
        calls = [f.facing for s in group for f in s.result.faces if f.facing is not None]
        facing.append(sum(calls) / len(calls) if calls else float("nan"))

    figure, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6), gridspec_kw={"height_ratios": [3, 1]}
    )
    # The dashboard's palette: an expression has one colour in every chart.
    top.stackplot(
        starts,
        *(shares[label] for label in LABELS),
        labels=list(LABELS),
        colors=[EXPRESSION_COLOURS[label] for label in LABELS],
        step="post",
    )
    top.set_ylabel("share of labelled faces")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    top.set_title(f"Displayed expressions over time (windows of {window:g} s)")
    bottom.step(starts, presence, where="post", color=FACE_PRESENCE_COLOUR, label="face present")
    # Faces with a head pose that faced the screen (a gap where none had a pose).
    bottom.step(
        starts,
        facing,
        where="post",
        color=FACING_SCREEN_COLOUR,
        linestyle=":",
        label="facing the screen",
    )
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_ylabel("share")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    bottom.set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
