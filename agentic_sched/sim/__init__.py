"""sim."""

# discrete-event simulator (engine, policies, workloads, metrics)
from .engine import SimResult, Simulation, simulate  # noqa: E402
from .policies import POLICIES, KubePolicy, PlannerPolicy, SlurmBackfillPolicy, make_policy  # noqa: E402
from .workloads import FAMILIES, Outage, SimWorkload, generate_workload, load_trace  # noqa: E402

__all__ = ["FAMILIES", "POLICIES", "KubePolicy", "Outage", "PlannerPolicy", "SimResult", "SimWorkload",
           "Simulation", "SlurmBackfillPolicy", "generate_workload", "load_trace", "make_policy", "simulate"]
