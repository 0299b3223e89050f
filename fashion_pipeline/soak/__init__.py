"""A soak under faults (issue 19.9): the real daemon, the embedded site and a one-minute scrape schedule.

    python -m fashion_pipeline.soak --ticks 12            # make soak
    python -m fashion_pipeline.soak --ticks 2 --faults login_wall,kill_worker --brands 2

``site`` is the embedded Pinterest site with boards that grow every tick and faults aimed at one
brand; ``definitions`` is the code location the daemon loads (the project's, plus the soak's
schedule); ``harness`` runs it all on a temporary DAGSTER_HOME and data root and injects the faults;
``checks`` are the end-of-soak checks, plain functions of an instance and a data root.
"""
