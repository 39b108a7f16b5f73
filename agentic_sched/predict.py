"""Runtime prediction from telemetry: learn actual runtimes of finished tasks.

``RuntimePredictor`` keeps (features, actual runtime) observations of finished tasks
and, once it has ``min_samples`` of them, fits a scikit-learn gradient-boosting model
of log(actual / estimate). ``predict`` then returns durations for new tasks; before
that (or for a task unlike anything seen) it returns the user's estimate unchanged.

Features: log of the estimate, cpu, memory, GPU milli, and hashed buckets of the
runtime kind and the command (argv[0] basename and the first argument), so "the
same job again" is recognised. Predictions are clamped to [estimate / 10, estimate
* 10]: a model never moves a plan further than that from what the user said.
The model persists with joblib (``save`` / ``load``); observations are plain floats.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

N_HASH = 16
CLAMP = 10.0


@attrs.frozen
class RunFeatures:
    """What a prediction may look at: the estimate, demand and what is run."""

    estimate: float
    cpu: float = 0.0
    mem_mb: float = 0.0
    gpu_milli: float = 0.0
    runtime: str = "process"
    command: tuple[str, ...] = ()

    def vector(self) -> np.ndarray:
        head = os.path.basename(self.command[0]) if self.command else ""
        arg = self.command[1] if len(self.command) > 1 else ""
        v = np.zeros(4 + 3 * N_HASH)
        v[:4] = (math.log(max(self.estimate, 1e-6)), self.cpu, math.log1p(self.mem_mb), self.gpu_milli / 1000)
        for i, token in enumerate((self.runtime, head, f"{head} {arg}")):
            v[4 + i * N_HASH + zlib.crc32(token.encode()) % N_HASH] = 1.0
        return v


class RuntimePredictor:
    """Learns actual/estimate runtime ratios; thread-safe for one writer (``fit``).

    ``observe`` is O(1); ``fit`` is O(n log n) in the observations (bounded by
    ``max_samples``, oldest dropped) and belongs off the event loop.
    """

    def __init__(self, *, min_samples: int = 20, max_samples: int = 20_000, seed: int = 0) -> None:
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.seed = seed
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self._model: Any = None
        self.fitted_on = 0

    def observe(self, features: RunFeatures, actual_s: float) -> None:
        """Record one finished run; non-positive or non-finite runtimes are ignored."""
        if not (actual_s > 0 and math.isfinite(actual_s)):
            return
        self._x.append(features.vector())
        self._y.append(math.log(actual_s / max(features.estimate, 1e-6)))
        if len(self._y) > self.max_samples:
            del self._x[0], self._y[0]

    @property
    def samples(self) -> int:
        return len(self._y)

    @property
    def ready(self) -> bool:
        return self._model is not None

    def fit(self) -> bool:
        """Refit on all observations; returns False (model unchanged) below ``min_samples``."""
        if len(self._y) < self.min_samples:
            return False
        from sklearn.ensemble import HistGradientBoostingRegressor

        model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, random_state=self.seed)
        model.fit(np.vstack(self._x), np.asarray(self._y))
        self._model, self.fitted_on = model, len(self._y)
        return True

    def predict(self, features: Sequence[RunFeatures]) -> np.ndarray:
        """Predicted durations (s), one per item; the estimates while not fitted."""
        est = np.array([f.estimate for f in features], dtype=float)
        if self._model is None or not len(features):
            return est
        ratio = np.exp(self._model.predict(np.vstack([f.vector() for f in features])))
        return est * np.clip(ratio, 1 / CLAMP, CLAMP)

    def save(self, path: str | Path) -> None:
        """Persist observations and model with joblib (atomic replace)."""
        import joblib

        tmp = Path(f"{path}.tmp")
        joblib.dump({"x": self._x, "y": self._y, "model": self._model, "fitted_on": self.fitted_on}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, **kw: Any) -> RuntimePredictor:
        """A predictor restored by ``save``; a fresh one when ``path`` does not exist."""
        import joblib

        pred = cls(**kw)
        if Path(path).exists():
            state = joblib.load(path)
            pred._x, pred._y, pred._model = list(state["x"]), list(state["y"]), state["model"]
            pred.fitted_on = int(state["fitted_on"])
        return pred


def features_of(spec: Any) -> RunFeatures:
    """The features of a runtime ``TaskSpec`` (duck-typed: estimate, demand, gpu, argv)."""
    gpu = spec.gpu or {}
    milli = float(gpu.get("count", 0)) * float(gpu.get("share", 1000)) if gpu else 0.0
    return RunFeatures(
        estimate=float(spec.duration), cpu=float(spec.demand.get("cpu", 0.0)),
        mem_mb=float(spec.demand.get("mem_mb", 0.0)), gpu_milli=milli,
        runtime=spec.runtime, command=tuple(spec.argv[:2]),
    )
