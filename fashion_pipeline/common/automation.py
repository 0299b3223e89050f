"""Declarative automation shared by the stages: which assets follow their inputs by themselves.

The cheap, deterministic assets update when an input updates (``AutomationCondition.eager()``);
the training assets have no condition at all: they turn stale and wait for a user.
"""
import dagster as dg

FOLLOWS_UPSTREAM = dg.AutomationCondition.eager()

# For an asset that reads only the upstream partitions materialized so far (pinterest_dataset
# merges the brands scraped, best_detector ranks the backbones trained, ablation_report the
# variants trained): eager, but a partition never materialized (three of the four backbones
# after the demo) must not hold it back for ever.
FOLLOWS_MATERIALIZED_PARTITIONS = FOLLOWS_UPSTREAM.without(~dg.AutomationCondition.any_deps_missing())

# Training steps: a lost GPU node or a preempted pod is worth two more tries, spread out. A diverged
# run raises a Failure with allow_retries=False and is not retried.
TRAINING_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
