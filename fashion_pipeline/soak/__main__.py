"""``python -m fashion_pipeline.soak``: see ``fashion_pipeline.soak.harness``."""
import sys

from fashion_pipeline.soak.harness import main

sys.exit(main())
