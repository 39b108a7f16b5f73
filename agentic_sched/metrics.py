"""Prometheus metrics of one scheduler (own registry, so several schedulers coexist).

``exposition()`` returns the text format; ``serve(port)`` exposes it over HTTP on
loopback only (port 0 picks a free port; the bound port is returned).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.queue_depth = Gauge("agentic_sched_queue_depth", "Tasks pending placement", registry=r)
        self.tasks = Gauge("agentic_sched_tasks", "Tasks by state", ["state"], registry=r)
        self.placements = Counter("agentic_sched_placements_total", "Attempts reserved on a worker", registry=r)
        self.plan_latency = Histogram(
            "agentic_sched_plan_latency_seconds", "Wall time of one planning round (problem to plan)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.fallbacks = Counter("agentic_sched_planner_fallbacks_total",
                                 "Rounds planned by greedy because the planner failed or overran",
                                 ["reason"], registry=r)
        self.workers = Gauge("agentic_sched_workers", "Workers by state", ["state"], registry=r)
        self.outcomes = Counter("agentic_sched_task_outcomes_total", "Finished attempts by outcome",
                                ["outcome"], registry=r)
        self.rescheduled = Counter("agentic_sched_rescheduled_total",
                                   "Attempts requeued after a lost worker, release or rejection",
                                   ["reason"], registry=r)
        self.ignored = Counter("agentic_sched_ignored_messages_total",
                               "Worker messages ignored (malformed, stale attempt, unknown worker)",
                               ["reason"], registry=r)
        self.preemptions = Counter("agentic_sched_preemptions_total",
                                   "Attempts stopped for a higher-priority task, by outcome "
                                   "(requested, preempted, finished_first)", ["outcome"], registry=r)
        self.preempt_latency = Histogram(
            "agentic_sched_preempt_latency_seconds", "Preemption decision to the victim's reported exit",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=r)
        self._server: WSGIServer | None = None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int = 0) -> int:
        """Serve ``/metrics`` on 127.0.0.1:``port`` in a daemon thread; returns the port."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
