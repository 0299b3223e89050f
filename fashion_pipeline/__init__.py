"""fashion_pipeline: runway images to a clothing detector and new fashion designs.

Domain logic lives in plain modules, one per stage (``deepfashion``, ``pinterest``,
``dedup``, ``detector``, ``gan``); each stage's ``assets.py`` is the thin Dagster layer.
"""
import os

# Before any stage imports torch, in every process of the package (the run worker, and the trainers' CLIs, run
# as ``python -m fashion_pipeline...``): idle OpenMP threads sleep instead of spinning. The assets that compute
# in the run worker (detections, reports, scoring) share the CPU with the training subprocesses; measured beside two
# busy trainers on 2 cores, tryon_report used 157 CPU-s with spinning threads and 80 with sleeping ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
