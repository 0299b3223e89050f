"""Declarative automation shared by the stages: which assets follow their inputs by themselves.

The cheap, deterministic assets update when an input updates (``AutomationCondition.eager()``);
the training assets have no condition at all: they turn stale and wait for a user.
"""
import dagster as dg

FOLLOWS_UPSTREAM = dg.AutomationCondition.eager()

# A dependency counts as present when at least one of its partitions is materialized (or will be in
# this tick). ``all_deps_match`` is true when, for every dependency, some partition matches.
_EVERY_DEP_HAS_A_PARTITION = dg.AutomationCondition.all_deps_match(
    ~dg.AutomationCondition.missing() | dg.AutomationCondition.will_be_requested()
).with_label("every_dep_has_a_materialized_partition")

# For an asset that reads only the upstream partitions materialized so far (pinterest_dataset
# merges the brands scraped, best_detector ranks the backbones trained, ablation_report the
# variants trained): eager, but a partition never materialized (three of the four backbones
# after the demo) must not hold it back for ever. A dependency with no partition at all does:
# ablation_report before any dcgan, or best_detector before any backbone, would be requested only
# to fail ("no DCGAN trained").
FOLLOWS_MATERIALIZED_PARTITIONS = (
    FOLLOWS_UPSTREAM.without(~dg.AutomationCondition.any_deps_missing()) & _EVERY_DEP_HAS_A_PARTITION
).with_label("eager_on_materialized_partitions")

# Training steps: a lost GPU node or a preempted pod is worth two more tries, spread out. A diverged
# run raises a Failure with allow_retries=False and is not retried.
TRAINING_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
