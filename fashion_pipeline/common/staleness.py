"""``partitions_in_sync``: a partitioned asset's unsynced partitions, shown on the asset itself.

Dagster 1.13 marks a partitioned asset's partitions "Unsynced" only on each partition's page; the
asset's node and overview show nothing. So every partitioned asset with upstream assets gets a
non-blocking WARN check that lists its materialized partitions whose upstream data or code changed
since (Dagster's own stale status, the same one the partition pages show). A failed check shows on
the graph node, in the Catalog and on the asset's Checks tab; its metadata names the partitions
and the first causes. Partitions never materialized are counted, not flagged: missing is not stale.

The checks run by automation: after the asset or one of its upstream assets updates, once nothing
they depend on is still being requested or run (so a re-scrape gives one evaluation at the end,
not one per step). Roots (``pinterest_images``) get none: only a code-version bump can unsync them.

Usage: ``python -m fashion_pipeline.common.staleness`` prints each check's verdict on the instance
at ``$DAGSTER_HOME``.
"""

import sys
from typing import Callable, Iterable

import dagster as dg

CHECK_NAME = "partitions_in_sync"
MAX_LISTED = 20  # partitions named in the metadata; the count is always complete

# Requested once after a dependency (the asset or an upstream) updated, when none of them is about
# to run or running: its verdict is then the settled one.
CHECK_CONDITION = (
    dg.AutomationCondition.any_deps_updated().since(dg.AutomationCondition.newly_requested())
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
    & ~dg.AutomationCondition.in_progress()
).with_label("after_deps_settle")


def unsynced_partitions(instance: dg.DagsterInstance, asset_graph, key: dg.AssetKey) -> dict:
    """Materialized partitions whose stale status is STALE, with the first causes; and counts."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    # The resolver the UI uses; outside a webserver request, the plain loading context Dagster provides.
    resolver = CachingStaleStatusResolver(instance, asset_graph, LoadingContextForTest(instance))
    partitions_def = asset_graph.get(key).partitions_def
    every = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
    materialized = set(instance.get_materialized_partitions(key))
    unsynced, causes = [], []
    for partition in every:
        if partition in materialized and resolver.get_status(key, partition) == StaleStatus.STALE:
            unsynced.append(partition)
            for cause in resolver.get_stale_root_causes(key, partition)[:1]:
                causes.append(f"{partition}: {cause.asset_key.to_user_string()} {cause.reason}")
    return {"unsynced": unsynced, "causes": causes, "materialized": len(materialized & set(every)), "total": len(every)}


def verdict(found: dict) -> dg.AssetCheckResult:
    unsynced = found["unsynced"]
    listed = ", ".join(unsynced[:MAX_LISTED]) + (f" (+{len(unsynced) - MAX_LISTED} more)" if len(unsynced) > MAX_LISTED else "")
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not unsynced,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(unsynced)} of {found['materialized']} materialized partitions unsynced: {listed}"
                     if unsynced else f"all {found['materialized']} materialized partitions in sync"),
        metadata={
            "unsynced_partitions": len(unsynced),
            "unsynced": listed or "-",
            "causes": dg.MetadataValue.md("\n".join(f"- {c}" for c in found["causes"][:MAX_LISTED]) or "-"),
            "materialized_partitions": found["materialized"],
            "never_materialized_partitions": found["total"] - found["materialized"],
        },
    )


def _check_for(assets_def: dg.AssetsDefinition, asset_graph: Callable) -> dg.AssetChecksDefinition:
    key = assets_def.key
    upstream = sorted({dep for dep in assets_def.keys_by_input_name.values()} | set(assets_def.asset_deps.get(key, ())),
                      key=lambda k: k.to_user_string())
    upstream = [dep for dep in upstream if dep != key]

    @dg.asset_check(
        asset=key,
        name=CHECK_NAME,
        blocking=False,
        additional_deps=upstream,
        automation_condition=CHECK_CONDITION,
        description="WARN when a materialized partition is unsynced (its upstream data or code changed since); "
                    "lists them. Partitions never materialized are counted, not flagged.",
    )
    def _partitions_in_sync(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return verdict(unsynced_partitions(context.instance, asset_graph(), key))

    return _partitions_in_sync


def partitions_in_sync_checks(assets: Iterable, asset_graph: Callable) -> list[dg.AssetChecksDefinition]:
    """One check per partitioned, executable asset that has upstream assets.

    ``asset_graph`` returns the code location's whole asset graph when a check runs (a run's own
    job graph is a subset, whose stale status differs: it called every partition in sync).
    """
    checks = []
    for assets_def in assets:
        if not isinstance(assets_def, dg.AssetsDefinition) or assets_def.partitions_def is None:
            continue
        if not assets_def.is_executable or len(assets_def.keys) != 1:
            continue
        if any(dep != assets_def.key for deps in assets_def.asset_deps.values() for dep in deps):
            checks.append(_check_for(assets_def, asset_graph))
    return checks


def main() -> int:
    from fashion_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    with dg.DagsterInstance.get() as instance:
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
            if dg.AssetCheckKey(key, CHECK_NAME) in graph.asset_check_keys:
                result = verdict(unsynced_partitions(instance, graph, key))
                print(f"{key.to_user_string()}: {result.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
