"""OpenMP threads that wait without spinning, unless the user says otherwise.

torch runs its CPU work on OpenMP threads that, by default (libgomp), spin at the barrier of every
parallel operation before sleeping. A judge runs thousands of small operations, and on a machine
shared with other jobs a spinning thread keeps the core its partner needs: judging the 7 demo
samples took 23-43 s with two other processes busy instead of 6 s, and 15-19 s with passive
waiting; on a quiet 2-core machine passive waiting cost nothing measurable (5.9-6.1 s vs 5.8-6.0 s;
benchmarks/RESULTS.md, "The first five minutes"). OpenMP reads ``OMP_WAIT_POLICY`` when torch is
first imported, so importing this module (`judgelm/__init__` does it first) sets it; a value
already set is kept, and nothing changes when torch was imported first.
"""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_passive_openmp"]


def prefer_passive_openmp() -> None:
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


prefer_passive_openmp()
