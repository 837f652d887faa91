"""The observability profile: Grafana's dashboard and Prometheus's scrape targets."""

from __future__ import annotations

import json
import re

import yaml
from fastapi.testclient import TestClient
from grafana_foundation_sdk.models.dashboard import Dashboard
from prometheus_client.parser import text_string_to_metric_families

from ops.grafana import dashboard
from services.analytics.app import create_app as analytics_app
from services.analytics.config import AnalyticsSettings
from tests.conftest import ROOT

PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
#: Words of PromQL that are not metric names.
PROMQL = {"sum", "by", "rate", "increase", "max", "histogram_quantile", "le", "code", "kind"}


def test_the_committed_dashboard_is_the_builders_and_loads_as_grafanas_model() -> None:
    committed = dashboard.OUT.read_text(encoding="utf-8")
    assert committed == dashboard.render(), "run: python -m ops.grafana.dashboard"
    model = Dashboard.from_json(json.loads(committed))
    assert model.uid == dashboard.UID
    assert model.panels is not None
    assert len(model.panels) == len(dashboard.PANELS)


def served_metric_names(pg_url: str, redis_url: str) -> set[str]:
    """Every sample name an API's /metrics shows once it has answered a request.

    The domain metrics of ingest and the workers are module-level objects of
    ``shared.metrics``, so one app's scrape lists them all.
    """
    config = AnalyticsSettings(database_url=pg_url, redis_url=redis_url, token_secret="x" * 32)
    client = TestClient(analytics_app(config))  # no lifespan: /healthz needs no store
    assert client.get("/healthz").status_code == 200
    text = client.get("/metrics").text
    names = set()
    # A labelled metric no process has used yet shows its family only: name its samples.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_dashboard_reads_is_served(pg_url: str, redis_url: str) -> None:
    served = served_metric_names(pg_url, redis_url)
    for _, _, queries in dashboard.PANELS:
        for expr, _legend in queries:
            words = set(re.findall(r"[a-z_]+_[a-z_]+", re.sub(r"\[[^]]*\]", "", expr)))
            metrics = {w for w in words if w.startswith("classpulse_")} - PROMQL
            assert metrics, expr
            assert metrics <= served, f"{expr}: {sorted(metrics - served)} not served"


def test_prometheus_scrapes_both_apis_and_every_worker_replica() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ingest"]["static_configs"][0]["targets"] == ["ingest:8000"]
    assert jobs["analytics"]["static_configs"][0]["targets"] == ["analytics:8001"]
    (workers,) = jobs["inference"]["dns_sd_configs"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    inference = compose["services"]["inference"]["environment"]
    assert workers["port"] == int(inference["CLASSPULSE_WORKER_METRICS_PORT"])
    for name in ("prometheus", "grafana"):
        assert compose["services"][name]["profiles"] == ["observability"]
