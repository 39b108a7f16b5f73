"""Runtime prediction: the model learns actual/estimate ratios and the scheduler plans with them."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from agentic_sched import Scheduler, TaskSpec
from agentic_sched.predict import RunFeatures, RuntimePredictor


def test_learns_per_command_ratios_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    pred = RuntimePredictor(min_samples=20)
    slow = RunFeatures(estimate=10.0, cpu=1, command=("/usr/bin/train", "--big"))
    fast = RunFeatures(estimate=10.0, cpu=1, command=("/usr/bin/etl", "daily"))
    assert list(pred.predict([slow, fast])) == [10.0, 10.0]  # not fitted: the estimates
    assert not pred.fit()  # below min_samples
    for _ in range(40):
        pred.observe(slow, 30.0 * rng.uniform(0.9, 1.1))
        pred.observe(fast, 5.0 * rng.uniform(0.9, 1.1))
    pred.observe(fast, float("nan"))  # ignored
    assert pred.samples == 80 and pred.fit() and pred.ready
    p_slow, p_fast = pred.predict([slow, fast])
    assert 25 < p_slow < 35 and 4 < p_fast < 6
    pred.save(tmp_path / "m.joblib")
    again = RuntimePredictor.load(tmp_path / "m.joblib")
    assert again.samples == 80 and np.allclose(again.predict([slow, fast]), [p_slow, p_fast])


def test_predictions_are_clamped_to_ten_times_the_estimate() -> None:
    pred = RuntimePredictor(min_samples=5)
    f = RunFeatures(estimate=1.0, command=("x",))
    for _ in range(10):
        pred.observe(f, 1000.0)
    pred.fit()
    assert pred.predict([f])[0] == pytest.approx(10.0)


@pytest.mark.anyio
async def test_scheduler_plans_with_learned_durations(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Tasks estimated at 5 s that really take ~0.05 s: once 20 have run, plans use the
    learned duration (clamped to >= 0.5 s) instead of 5 s, and the model survives a restart."""
    argv = ["/bin/sh", "-c", "sleep 0.05"]
    probe = TaskSpec(argv=argv, duration=5.0, demand={"cpu": 1}, id="probe", release=3600)
    async with Scheduler(state_dir=str(tmp_path), planner="eft", predict_min_samples=20) as s:
        await s.add_worker(id="w1", capacity={"cpu": 4}, max_concurrency=4)
        events = s.subscribe()
        warm = [TaskSpec(argv=argv, duration=5.0, demand={"cpu": 1}, id=f"warm-{i}") for i in range(24)]
        await s.wait(await s.submit_many(warm), timeout=60)
        with anyio.fail_after(30):
            async for ev in events:
                if ev.kind == "predictor_fitted":
                    assert ev.data["samples"] >= 20
                    break
        await s.submit(probe)  # released in an hour: stays pending, planned for later
        (a,) = (await s.plan_preview()).assignments
        assert a.task == "probe" and a.end - a.start < 1.0
    async with Scheduler(state_dir=str(tmp_path), planner="eft") as s:  # w1 is restored from the store
        with anyio.fail_after(30):
            while not any(w.id == "w1" and w.state == "up" for w in s.workers()):
                await anyio.sleep(0.05)
        (a,) = (await s.plan_preview()).assignments
        assert a.task == "probe" and a.end - a.start < 1.0
