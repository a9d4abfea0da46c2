"""The Prometheus metrics of the serving app."""

from __future__ import annotations

import os


class ServingMetrics:
    """Prometheus metrics in their own registry (several servers may share one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("funnel_serving_requests", "Predict requests by use case and HTTP status",
                                ["use_case", "status"], registry=self.registry)
        self.latency = Histogram(
            "funnel_serving_request_seconds", "Predict request time inside the server", ["use_case"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry)
        self.batch_rows = Histogram("funnel_serving_batch_rows", "Rows per model call (micro-batch size)",
                                    ["use_case"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                    registry=self.registry)
        # with several worker processes, one series per live worker (label ``pid``)
        self.version = Gauge("funnel_serving_model_version", "Model version being served", ["use_case"],
                             registry=self.registry, multiprocess_mode="liveall")
        self.reloads = Counter("funnel_serving_reloads", "Model loads by outcome (loaded, failed)",
                               ["use_case", "outcome"], registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """This process's metrics, or every worker's added up when serving with several processes."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
