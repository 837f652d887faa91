"""``classpulse analyze`` on the media images and videos, with no server."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from classpulse.cli import app
from shared.palette import EXPRESSION_COLOURS, FACE_PRESENCE_COLOUR, FACING_SCREEN_COLOUR
from tests.conftest import MEDIA

runner = CliRunner()


def test_image_prints_one_line_per_face_set() -> None:
    result = runner.invoke(app, ["analyze", str(MEDIA / "two_people.jpg")])
    assert result.exit_code == 0, result.output
    assert "two_people.jpg  2 face(s)" in result.output


def test_min_face_leaves_out_smaller_faces() -> None:
    # The two faces are about a fifth of the photo's height.
    result = runner.invoke(app, ["analyze", str(MEDIA / "two_people.jpg"), "--min-face", "0.5"])
    assert result.exit_code == 0, result.output
    assert "No face identified" in result.output


def test_folder_json_lines_and_bad_files_are_skipped(tmp_path: Path) -> None:
    shutil.copy(MEDIA / "obama.jpg", tmp_path / "a.jpg")
    shutil.copy(MEDIA / "astronaut.png", tmp_path / "b.png")
    (tmp_path / "c.jpg").write_bytes(b"not an image")
    result = runner.invoke(app, ["analyze", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["source"] for line in lines] == ["a.jpg", "b.png"]
    for line in lines:
        (face,) = line["faces"]
        assert len(face["probabilities"]) == 7
        assert abs(sum(face["probabilities"]) - 1) < 0.01
        assert face["label"] in {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert "c.jpg: skipped" in result.output


def test_video_is_sampled_every_n_seconds_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        ["analyze", "--video", str(MEDIA / "video_01.mp4"), "--every", "1", "--report", str(out)],
    )
    assert result.exit_code == 0, result.output
    # 3.0 s of video sampled at 0, 1, 2 (and 3 if the last frame reaches it).
    times = [line.split("s", 1)[0].strip() for line in result.stdout.splitlines() if "face" in line]
    assert times[:3] == ["0.0", "1.0", "2.0"]
    with (out / "timeline.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["time_s"] for row in rows} >= {"0.0", "1.0", "2.0"}
    assert all(int(row["faces"]) >= 1 for row in rows)  # video_01 shows faces in every frame
    # Its smiling woman faces the camera throughout.
    assert all(row["facing"] == "True" and row["yaw"] for row in rows if row["face_index"] == "0")
    timeline = json.loads((out / "timeline.json").read_text())
    assert len(timeline) == len(times)
    assert all(isinstance(s["faces"][0]["yaw"], float) for s in timeline)
    assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")
    # The progress bar ends full: every sample it counted on was analysed.
    done, total = re.findall(r"(\d+)/(\d+) \[", result.stderr)[-1]
    assert done == total == str(len(times)), result.stderr


def test_video_report_chart_uses_the_dashboards_palette(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    out = tmp_path / "report"
    result = runner.invoke(
        app,
        ["analyze", "--video", str(MEDIA / "video_01.mp4"), "--every", "0.5", "--report", str(out)],
    )
    assert result.exit_code == 0, result.output
    shown = {
        face["label"]
        for sample in json.loads((out / "timeline.json").read_text())
        for face in sample["faces"]
        if face["label"]
    }
    assert shown
    image = cv2.imread(str(out / "chart.png"))
    colours = {f"#{r:02x}{g:02x}{b:02x}" for b, g, r in np.unique(image.reshape(-1, 3), axis=0)}
    # Every expression's colour is in the legend, the presence line in its own colour.
    assert set(EXPRESSION_COLOURS.values()) <= colours
    assert FACE_PRESENCE_COLOUR in colours
    assert FACING_SCREEN_COLOUR in colours


def test_blank_image_says_no_face(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((240, 320, 3), 200, np.uint8))
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 0
    assert "No face identified" in result.output


def test_report_needs_a_video() -> None:
    result = runner.invoke(app, ["analyze", str(MEDIA / "obama.jpg"), "--report", "/tmp/x"])
    assert result.exit_code != 0
