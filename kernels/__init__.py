"""Numba kernels: arrays in, arrays out, each with a plain-Python reference. Imports nothing of agentic_sched."""
