"""The discrete-event simulator: hand-computed timelines per policy, determinism,
worker failures, traces and the CLI hook. Greedy planners only (deterministic)."""

from __future__ import annotations

import argparse
import json

import pytest

from agentic_sched.model import Device, GpuDemand, Problem, Task, Worker
from agentic_sched.sim.cli import add_simulate_parser, run_simulate
from agentic_sched.sim.engine import simulate
from agentic_sched.sim.policies import (
    POLICIES,
    KubePolicy,
    PlannerPolicy,
    SlurmBackfillPolicy,
    make_policy,
)
from agentic_sched.sim.workloads import (
    FAMILIES,
    Outage,
    SimWorkload,
    generate_workload,
    load_trace,
    trace_from_dict,
    trace_to_dict,
)


def trace(workers, tasks, actual=None, outages=()) -> SimWorkload:
    return SimWorkload(Problem(workers, tasks), actual or {}, outages, name="hand")


def timeline(result) -> dict[str, tuple[str, float, float]]:
    """task id -> (worker id, start of the last run, end)."""
    return {st.task.id: (result.worker_ids[st.worker], st.start, st.end)
            for st in result.tasks if st.state == "done"}


def run(wl: SimWorkload, policy, **kw):
    return simulate(wl, policy, **kw)


def cpu(n: float) -> dict[str, float]:
    return {"cpu": n}


# --------------------------------------------------------------------------- kube


def _kube_trace() -> SimWorkload:
    return trace(
        [Worker("w0", cpu(4)), Worker("w1", cpu(4))],
        [Task("a", cpu(2), 4.0, release=0.0), Task("b", cpu(2), 2.0, release=0.0),
         Task("c", cpu(4), 1.0, release=1.0)],
    )


def test_kube_spread_hand_timeline():
    # t=0: a -> w0 (both empty, tie to the lowest index); b -> w1 (least allocated).
    # t=1: c needs 4 cpu, each worker has 2 free: waits. t=2: b ends, c -> w1 [2, 3).
    r = run(_kube_trace(), KubePolicy("spread"))
    assert timeline(r) == {"a": ("w0", 0, 4), "b": ("w1", 0, 2), "c": ("w1", 2, 3)}
    assert r.metrics["makespan"] == 4
    assert r.metrics["mean_wait"] == pytest.approx(1 / 3)
    # cpu used 4 on [0,2), 6 on [2,3), 2 on [3,4) over 8 cpu: (8 + 6 + 2) / 32
    assert r.metrics["cpu_util"] == pytest.approx(16 / 32)


def test_kube_binpack_hand_timeline():
    # t=0: a -> w0 (tie), b -> w0 (most allocated); t=1: c -> w1 (empty) [1, 2).
    r = run(_kube_trace(), KubePolicy("binpack"))
    assert timeline(r) == {"a": ("w0", 0, 4), "b": ("w0", 0, 2), "c": ("w1", 1, 2)}
    assert r.metrics["mean_wait"] == 0


# --------------------------------------------------------------------------- slurm


def _backfill_trace() -> SimWorkload:
    return trace(
        [Worker("w0", cpu(4))],
        [Task("j1", cpu(2), 10.0, release=0.0), Task("j2", cpu(4), 5.0, release=1.0),
         Task("j3", cpu(2), 20.0, release=2.0), Task("j4", cpu(2), 7.0, release=3.0)],
    )


def test_slurm_easy_backfill_hand_timeline():
    # t=0  j1 starts [0, 10).
    # t=1  j2 (head, 4 cpu) does not fit: reservation at t=10 (j1's estimated end).
    # t=2  j3 fits now but would run to 22 > 10 and leave only 2 cpu at t=10: refused.
    # t=3  j4 fits and ends at 3 + 7 = 10 <= 10: backfilled [3, 10), the head is not delayed.
    # t=10 j1, j4 end; j2 starts [10, 15); j3 is the new head, reserved at 15; [15, 35).
    r = run(_backfill_trace(), SlurmBackfillPolicy())
    assert timeline(r) == {"j1": ("w0", 0, 10), "j2": ("w0", 10, 15), "j3": ("w0", 15, 35),
                           "j4": ("w0", 3, 10)}


def test_kube_on_the_backfill_trace_starves_the_big_job():
    # No reservation: j3 jumps in at t=2 [2, 22); j4 gets the 2 cpu j1 frees at 10 [10, 17);
    # j2 needs all 4 cpu and waits for j3: [22, 27).
    r = run(_backfill_trace(), KubePolicy("spread"))
    assert timeline(r) == {"j1": ("w0", 0, 10), "j2": ("w0", 22, 27), "j3": ("w0", 2, 22),
                           "j4": ("w0", 10, 17)}


def test_backfill_reservation_uses_estimates_not_actual_runtimes():
    # j1 is estimated at 10 but really takes 6. At t=1 j2's reservation is t=10, so j3
    # (estimated end 2 + 9 = 11 > 10) is refused even though j1 will really end at 6.
    # t=6 j1 ends: j2 starts [6, 11); j3 then starts [11, 20).
    wl = trace([Worker("w0", cpu(4))],
               [Task("j1", cpu(2), 10.0, release=0.0), Task("j2", cpu(4), 5.0, release=1.0),
                Task("j3", cpu(2), 9.0, release=2.0)], actual={"j1": 6.0})
    r = run(wl, SlurmBackfillPolicy())
    assert timeline(r) == {"j1": ("w0", 0, 6), "j2": ("w0", 6, 11), "j3": ("w0", 11, 20)}


# --------------------------------------------------------------------------- planner


def _deadline_trace() -> SimWorkload:
    return trace(
        [Worker("w0", cpu(2))],
        [Task("x", cpu(2), 10.0, release=0.0), Task("y", cpu(2), 1.0, release=1.0, deadline=12.0),
         Task("z", cpu(2), 1.0, release=2.0, deadline=11.5)],
    )


def test_planner_policy_time_trigger_and_deadline_order():
    # t=0  x fits now: the batch closes at once, x [0, 10).
    # t=1, t=2  y and z arrive and fit nowhere: 2 < K=10, wait for T=5 after y -> t=6.
    # t=6  plan (eft: earliest deadline first): z at 10, y at 11 (x's estimated end is 10).
    # t=10 x ends, z starts [10, 11); t=11 y [11, 12). No deadline missed.
    policy = PlannerPolicy("eft", batch_k=10, batch_t=5.0)
    r = run(_deadline_trace(), policy)
    assert timeline(r) == {"x": ("w0", 0, 10), "z": ("w0", 10, 11), "y": ("w0", 11, 12)}
    assert r.metrics["misses"] == 0
    assert r.timing["planner_calls"] == 2


def test_planner_policy_count_trigger():
    # K=2: the second unplanned task (z at t=2) closes the batch; same plan as above.
    r = run(_deadline_trace(), PlannerPolicy("eft", batch_k=2, batch_t=100.0))
    assert timeline(r) == {"x": ("w0", 0, 10), "z": ("w0", 10, 11), "y": ("w0", 11, 12)}
    assert r.timing["planner_calls"] == 2


def test_kube_misses_the_deadline_the_planner_keeps():
    # FIFO: y [10, 11), z [11, 12) > 11.5.
    r = run(_deadline_trace(), KubePolicy("spread"))
    assert timeline(r)["z"] == ("w0", 11, 12)
    assert r.metrics["misses"] == 1
    assert r.metrics["lateness"] == pytest.approx(0.5)


def test_planner_starts_early_when_work_ends_before_its_estimate():
    # x is estimated at 10 but ends at 4: the plan (z at 10, y at 11) is followed early.
    wl = trace(_deadline_trace().problem.workers, _deadline_trace().problem.tasks, actual={"x": 4.0})
    r = run(wl, PlannerPolicy("eft", batch_k=2, batch_t=100.0))
    assert timeline(r) == {"x": ("w0", 0, 4), "z": ("w0", 4, 5), "y": ("w0", 5, 6)}


# --------------------------------------------------------------------------- runtimes, GPUs


def test_actual_runtime_and_speed():
    wl = trace([Worker("fast", cpu(1), speed=2.0)], [Task("a", cpu(1), 4.0, release=1.0)],
               actual={"a": 6.0})
    r = run(wl, KubePolicy("spread"))
    assert timeline(r) == {"a": ("fast", 1, 4)}  # 6 / speed 2


def test_gpu_sharing_allocation_and_fragmentation():
    # one shared task of 500 milli on a 1-GPU worker for 2 s: half the GPU allocated, the
    # other half fragmented (free on a partially used device).
    wl = trace([Worker("g", cpu(4), devices=[Device("gpu")])],
               [Task("s", cpu(1), 2.0, release=0.0, gpu=GpuDemand(1, 500)),
                Task("whole", cpu(1), 2.0, release=0.0, gpu=GpuDemand(1))])
    r = run(wl, KubePolicy("binpack"))
    assert timeline(r) == {"s": ("g", 0, 2), "whole": ("g", 2, 4)}
    assert r.metrics["gpu_alloc_ratio"] == pytest.approx(0.75)
    assert r.metrics["gpu_frag"] == pytest.approx(0.25)


def test_task_no_worker_can_host_is_rejected_with_reason():
    wl = trace([Worker("w0", cpu(2))], [Task("big", cpu(8), 1.0), Task("ok", cpu(1), 1.0)])
    r = run(wl, "kube-spread")
    big = next(st for st in r.tasks if st.task.id == "big")
    assert big.state == "rejected" and "insufficient cpu" in big.reason
    assert r.metrics["rejected"] == 1 and r.metrics["finished"] == 1


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("policy", ["kube-spread", "kube-binpack", "slurm-backfill", "planner"])
def test_failure_moves_lost_work_to_another_worker(policy):
    # a starts on w0 at 0 (lowest index); w0 fails at 2: a is lost and restarts on w1 [2, 6).
    wl = trace([Worker("w0", cpu(2)), Worker("w1", cpu(2))], [Task("a", cpu(1), 4.0, release=0.0)],
               outages=[Outage("w0", 2.0, 5.0)])
    r = run(wl, make_policy(policy, planner="eft"))
    assert timeline(r) == {"a": ("w1", 2, 6)}
    st = r.tasks[0]
    assert st.restarts == 1 and st.first_start == 0 and r.metrics["restarts"] == 1


def test_failure_and_recovery_on_a_single_worker():
    # w0 down over [2, 5): a is lost at 2 and restarts at the recovery [5, 9).
    wl = trace([Worker("w0", cpu(2))], [Task("a", cpu(1), 4.0, release=0.0)],
               outages=[Outage("w0", 2.0, 5.0)])
    r = run(wl, KubePolicy("spread"))
    assert timeline(r) == {"a": ("w0", 5, 9)}
    # capacity of up workers is 0 while down: util = (2 cpu-s + 4 cpu-s) / (2 * 2 + 2 * 4)
    assert r.metrics["cpu_util"] == pytest.approx(6 / 12)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("policy", POLICIES)
def test_same_seed_same_run(policy):
    wl = generate_workload("gpu", 60, 6, load=1.2, seed=3)

    def once(seed):
        r = simulate(wl, make_policy(policy, planner="eft"), seed=seed, noise=0.3, mtbf=400.0, mttr=50.0)
        return r.metrics, [(st.worker, st.start, st.end, st.restarts) for st in r.tasks]

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_generated_families_are_deterministic_and_sized():
    for fam in FAMILIES:
        a = generate_workload(fam, 50, 10, seed=1)
        b = generate_workload(fam, 50, 10, seed=1)
        assert trace_to_dict(a) == trace_to_dict(b)
        assert len(a.problem.tasks) == 50 and len(a.problem.workers) == 10
    with pytest.raises(ValueError, match="unknown workload family"):
        generate_workload("nope", 5, 1)


# --------------------------------------------------------------------------- traces and CLI


def test_trace_round_trip_and_errors(tmp_path):
    wl = generate_workload("hetero", 20, 5, seed=2)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(trace_to_dict(wl)))
    back = load_trace(path)
    assert back.problem == wl.problem and dict(back.actual) == dict(wl.actual)
    doc = trace_to_dict(wl)
    doc["outages"] = [{"worker": "nope", "at": 1, "until": 2}]
    with pytest.raises(ValueError, match="unknown worker id"):
        trace_from_dict(doc)
    with pytest.raises(ValueError, match="unknown key"):
        trace_from_dict({**trace_to_dict(wl), "extra": 1})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_simulate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "m.json"
    args = _args("--workload", "deadline", "--tasks", "30", "--workers", "4", "--planner", "eft",
                 "--json", str(out))
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert all(p in text for p in ("kube-spread", "slurm-backfill", "planner[eft]", "p95_wait"))
    doc = json.loads(out.read_text())
    assert len(doc["results"]) == 4 and "misses" in doc["results"][0]["metrics"]


def test_cli_bad_input_is_one_line_value_error():
    with pytest.raises(ValueError, match="unknown policy"):
        run_simulate(_args("--policy", "fifo"))
    with pytest.raises(ValueError, match="neither a family"):
        run_simulate(_args("--workload", "/no/such/file.json"))
