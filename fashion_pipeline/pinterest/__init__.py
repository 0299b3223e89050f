"""Pinterest stage: per-brand runway scrape (Selenium), original-image download, embedded site.

- ``brands.yaml`` / ``brands.py``: which brands, and where each one's pins come from;
- ``scraper.py``: scroll a board or search in headless Chromium and collect its pins;
- ``urls.py``: pick the original-resolution image URL, with fallbacks;
- ``download.py``: polite concurrent download, validation, content-hash files, Parquet manifest;
- ``site/``: the embedded Pinterest-like website used by default and in tests;
- ``assets.py``: the ``pinterest_images`` asset, partitioned by brand, and its schedule.
"""
