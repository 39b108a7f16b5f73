"""``SchedulerConfig``: every setting of one ``Scheduler``, with its default."""

from __future__ import annotations

from typing import Any

import attrs

from .model import Weights

#: the unassigned weight of online planning rounds (Scheduler, simulator): leaving a
#: runnable task out must never pay; with the contract's 1000 a long task whose deadline
#: has passed (lateness cost > 1000) would be left out of every round and wait forever
ONLINE_UNASSIGNED_WEIGHT = 1e6


def online_weights(weights: Weights) -> Weights:
    """``weights`` for an online round: the unassigned weight raised to at least
    ``ONLINE_UNASSIGNED_WEIGHT`` (the Scheduler's default and the simulator's planner)."""
    if weights.unassigned >= ONLINE_UNASSIGNED_WEIGHT:
        return weights
    return attrs.evolve(weights, unassigned=ONLINE_UNASSIGNED_WEIGHT)


def _runtime_weights() -> Weights:
    return online_weights(Weights())


@attrs.frozen
class SchedulerConfig:
    """Settings of one scheduler. ``state_dir`` holds ``scheduler.db`` and, per local
    worker, ``workers/<id>/`` (agent socket, journal, task logs).

    Batching: a round is planned when ``batch_size`` tasks wait, ``batch_window_s``
    after the first one arrived, at once on worker events / freed capacity (if
    ``replan_on_worker_events``), and when a delayed start falls due; one round plans
    at most ``batch_max`` tasks. ``planner`` is a planner name run with
    ``plan_budget_s``; on errors/overruns the round falls back to greedy. With
    ``dispatch_first`` (default) a round of a non-greedy planner first starts, at once,
    the tasks an EFT pass (milliseconds) starts now; the planner then plans the rest
    within its budget, so freed capacity never idles while it thinks.

    Preemption (``preemption``): a task that a round cannot start now (unassigned, a
    failed plan check, or planned more than ``preempt_min_wait_s`` later / past its
    deadline) stops running ``TaskSpec.preemptible`` attempts of strictly lower priority
    on one worker; they get SIGTERM, ``preempt_grace_s`` to checkpoint, then SIGKILL,
    and are requeued (docs/preemption.md).
    """

    state_dir: str
    planner: Any = "portfolio"  # a name or an object with plan(problem, budget_s): "portfolio" plans
    #                             within plan_budget_s (small rounds end early), "eft" in milliseconds
    plan_budget_s: float = 1.0
    weights: Weights = attrs.field(factory=_runtime_weights)  # the planners' objective weights
    dispatch_first: bool = True  # a non-greedy planner's round first starts what EFT starts now
    batch_size: int = 64
    batch_window_s: float = 0.02
    batch_max: int = 512
    replan_on_worker_events: bool = True
    start_slack_s: float = 0.05
    heartbeat_s: float = 0.5
    heartbeat_timeout_s: float = 1.5
    reserve_ttl_s: float = 10.0
    orphan_timeout_s: float = 60.0
    stop_agents_on_exit: bool = True
    metrics_port: int | None = None
    planner_max_failures: int = 3
    planner_cooldown_s: float = 30.0
    predict_runtimes: bool = True   # learn durations from finished tasks (predict.py)
    predict_min_samples: int = 20
    predict_refit_every: int = 50
    preemption: bool = True         # stop lower-priority preemptible attempts for waiting tasks
    preempt_grace_s: float = 10.0   # SIGTERM -> SIGKILL: the victim's time to write its checkpoint
    preempt_min_wait_s: float = 0.0  # a task planned to start within this does not preempt
