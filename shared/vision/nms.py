"""Non-maximum suppression over candidate faces, plain and weighted.

Rows are ``[x0, y0, x1, y1, kx0, ky0, kx1, ky1, ...]`` (box corners then
keypoints) with one score each. Plain NMS keeps the best of each cluster
(RetinaFace's authors); weighted NMS replaces it by the score-weighted mean of
the cluster, box and keypoints alike, keeping the best score (MediaPipe's
``WEIGHTED`` algorithm for BlazeFace), which steadies boxes between frames.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]


def iou_one_to_many(box: Rows, boxes: Rows) -> npt.NDArray[np.float32]:
    """Intersection over union of one ``[x0, y0, x1, y1]`` with each row of ``boxes``."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(rows: Rows, scores: Scores, threshold: float) -> tuple[Rows, Scores]:
    """Keep the best-scoring row of each group overlapping above ``threshold``."""
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    keep: list[int] = []
    alive = np.ones(len(rows), dtype=bool)
    for i in range(len(rows)):
        if not alive[i]:
            continue
        keep.append(i)
        alive[i + 1 :] &= iou_one_to_many(rows[i], rows[i + 1 :]) <= threshold
    return rows[keep], scores[keep]


def weighted_nms(rows: Rows, scores: Scores, threshold: float) -> tuple[Rows, Scores]:
    """MediaPipe's weighted NMS: each cluster becomes its score-weighted mean row."""
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    out_rows: list[Rows] = []
    out_scores: list[float] = []
    while len(rows):
        overlap = iou_one_to_many(rows[0], rows) > threshold
        overlap[0] = True
        weights = scores[overlap]
        out_rows.append((rows[overlap] * weights[:, None]).sum(axis=0) / weights.sum())
        out_scores.append(float(scores[0]))
        rows, scores = rows[~overlap], scores[~overlap]
    if not out_rows:
        return rows, scores
    return np.stack(out_rows).astype(np.float32), np.asarray(out_scores, dtype=np.float32)
