"""fashion_pipeline: runway images to a clothing detector and new fashion designs.

Domain logic lives in plain modules, one per stage (``deepfashion``, ``pinterest``,
``dedup``, ``detector``, ``gan``); each stage's ``assets.py`` is the thin Dagster layer.
"""
