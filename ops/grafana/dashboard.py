"""The Grafana dashboard of ClassPulse, built from Grafana's own schema types.

``python -m ops.grafana.dashboard`` writes ``classpulse.json`` beside the
provisioning files (docker compose's ``observability`` profile loads it); a test
checks the committed file is this builder's output and that every metric its
queries read is one the services serve.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "provisioning" / "dashboards" / "classpulse.json"
UID = "classpulse-overview"
#: The Prometheus data source that provisioning/datasources/prometheus.yml declares.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="classpulse-prometheus")

#: (title, unit, [(PromQL, legend)]) in reading order: intake, queue, workers, readers.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Frames accepted and refused per second",
        "ops",
        [
            ("sum(rate(classpulse_frames_accepted_total[1m]))", "accepted"),
            ("sum by (code) (rate(classpulse_frames_refused_total[1m]))", "refused: {{code}}"),
        ],
    ),
    (
        "Queue: frames waiting and the oldest one's age",
        "short",
        [
            ("max(classpulse_queue_length)", "waiting"),
            ("max(classpulse_oldest_queued_frame_age_seconds)", "oldest (s)"),
        ],
    ),
    (
        "Frames finished per second, by status and reason",
        "ops",
        [
            (
                "sum by (status, reason) (rate(classpulse_frames_finished_total[1m]))",
                "{{status}} {{reason}}",
            )
        ],
    ),
    (
        "Worker time per frame stage (p95)",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le, stage) "
                "(rate(classpulse_inference_stage_seconds_bucket[5m])))",
                "{{stage}}",
            )
        ],
    ),
    (
        "Faces per frame (mean), retries, re-queued and expired frames",
        "short",
        [
            (
                "sum(rate(classpulse_faces_per_frame_sum[5m])) / "
                "sum(rate(classpulse_faces_per_frame_count[5m]))",
                "faces per frame",
            ),
            ("sum(increase(classpulse_task_retries_total[5m]))", "retries / 5 min"),
            ("sum(increase(classpulse_frames_requeued_total[5m]))", "re-queued / 5 min"),
            ("sum(increase(classpulse_frames_expired_total[5m]))", "expired / 5 min"),
        ],
    ),
    (
        "API requests per second by route and status",
        "reqps",
        [
            (
                "sum by (handler, status) (rate(classpulse_http_requests_total[1m]))",
                "{{handler}} {{status}}",
            )
        ],
    ),
    (
        "API latency p95 by route",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le, handler) "
                "(rate(classpulse_http_request_duration_seconds_bucket[5m])))",
                "{{handler}}",
            )
        ],
    ),
    (
        "Errors per second by code, and open live connections",
        "short",
        [
            ("sum by (code) (rate(classpulse_api_errors_total[1m]))", "error: {{code}}"),
            ("sum by (kind) (classpulse_open_connections)", "open: {{kind}}"),
        ],
    ),
]


def build() -> dict[str, object]:
    """The dashboard as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("ClassPulse")
        .uid(UID)
        .tags(["classpulse"])
        .description("Frames in, queue, workers and readers of one ClassPulse deployment")
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    for title, unit, queries in PANELS:
        panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12)
        for ref, (expr, legend) in enumerate(queries):
            panel = panel.with_target(
                prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + ref))
            )
        board = board.with_panel(panel)
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
