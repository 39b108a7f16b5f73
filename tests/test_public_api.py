"""The one public face: __all__ is complete and every name resolves."""

from __future__ import annotations

import agentic_sched


def test_all_names_resolve() -> None:
    for name in agentic_sched.__all__:
        assert hasattr(agentic_sched, name), name


def test_all_is_complete() -> None:
    public = {n for n in vars(agentic_sched) if not n.startswith("_")}
    modules = {n for n, v in vars(agentic_sched).items() if type(v).__name__ == "module"}
    assert public - modules - set(agentic_sched.__all__) == set()
