"""Every notebook in notebooks/ runs top to bottom in a fresh kernel (nbclient); any cell
error fails the test. Outputs are not written back (the committed notebooks stay clean)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["quickstart", "planner_playground", "remote_workers", "benchmark_viewer"]


@pytest.fixture(scope="session")
def python3_kernel() -> str:
    """A ``python3`` kernelspec for this interpreter (installed into sys.prefix if missing)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
        ok = argv0 in ("python", "python3", "{python}") or Path(argv0).resolve() == Path(sys.executable).resolve()
    except NoSuchKernel:
        ok = False
    if not ok:  # e.g. a fresh nox venv, or a user-level spec of another interpreter
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True)
    return "python3"


def test_every_notebook_is_tested() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, python3_kernel: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name=python3_kernel,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.perf_counter()
    client.execute()   # raises CellExecutionError on the first failing cell
    print(f"{name}: {time.perf_counter() - t0:.1f}s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
