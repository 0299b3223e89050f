"""A tiny code location used only by the UI workflow test (``test_ui_backfill.py``)."""
