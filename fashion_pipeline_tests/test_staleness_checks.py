"""``partitions_in_sync``: a partitioned asset's unsynced partitions show as a WARN check on the asset itself."""
import dagster as dg

from fashion_pipeline.common import staleness
from fashion_pipeline.definitions import defs

PARTS = dg.StaticPartitionsDefinition(["a", "b", "c"])
UPSTREAM_VERSION = {"value": "1"}


@dg.asset(code_version="1")
def upstream():
    return dg.Output(1, data_version=dg.DataVersion(UPSTREAM_VERSION["value"]))


@dg.asset(partitions_def=PARTS, deps=[upstream], code_version="1")
def downstream(context: dg.AssetExecutionContext):
    return dg.MaterializeResult(data_version=dg.DataVersion("d" + context.partition_key))


def _check_requested(result, key: dg.AssetCheckKey) -> bool:
    # get_num_requested counts assets only; a check's request is its evaluation's true subset.
    return any(evaluation.key == key and evaluation.true_subset.size for evaluation in result.results)


def _toy():
    toy: dict = {}
    checks = staleness.partitions_in_sync_checks([upstream, downstream], lambda: toy["defs"].resolve_asset_graph())
    toy["defs"] = dg.Definitions(assets=[upstream, downstream], asset_checks=checks,
                                 jobs=[dg.define_asset_job("check_job", selection=dg.AssetSelection.checks(*checks))])
    return toy["defs"], checks


def _run_check(toy_defs, instance) -> dg.AssetCheckEvaluation:
    (evaluation,) = toy_defs.resolve_job_def("check_job").execute_in_process(instance=instance).get_asset_check_evaluations()
    return evaluation


def test_unsynced_partitions_fail_the_check_with_a_warning_and_are_named(monkeypatch):
    monkeypatch.setitem(UPSTREAM_VERSION, "value", "1")
    toy_defs, checks = _toy()
    assert [key for c in checks for key in c.check_keys] == [dg.AssetCheckKey(downstream.key, "partitions_in_sync")]
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([upstream], instance=instance)
    for partition in ("a", "b"):  # c never materialized: counted, not flagged
        dg.materialize([upstream, downstream], selection=[downstream], partition_key=partition, instance=instance)
    fresh = _run_check(toy_defs, instance)
    assert fresh.passed and fresh.metadata["never_materialized_partitions"].value == 1

    monkeypatch.setitem(UPSTREAM_VERSION, "value", "2")  # new upstream data: a and b are now unsynced
    dg.materialize([upstream], instance=instance)
    stale = _run_check(toy_defs, instance)
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["unsynced_partitions"].value == 2 and stale.metadata["unsynced"].value == "a, b"
    assert "upstream has a new data version" in stale.metadata["causes"].value

    dg.materialize([upstream, downstream], selection=[downstream], partition_key="a", instance=instance)
    partly = _run_check(toy_defs, instance)
    assert not partly.passed and partly.metadata["unsynced"].value == "b"


def test_the_check_is_requested_once_its_dependencies_settle(monkeypatch):
    toy_defs, _ = _toy()
    key = dg.AssetCheckKey(downstream.key, "partitions_in_sync")
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([upstream], instance=instance)
    dg.materialize([upstream, downstream], selection=[downstream], partition_key="a", instance=instance)
    cursor = dg.evaluate_automation_conditions(defs=toy_defs, instance=instance).cursor
    settled = dg.evaluate_automation_conditions(defs=toy_defs, instance=instance, cursor=cursor)
    assert not _check_requested(settled, key)  # nothing changed
    monkeypatch.setitem(UPSTREAM_VERSION, "value", "3")
    dg.materialize([upstream], instance=instance)
    after = dg.evaluate_automation_conditions(defs=toy_defs, instance=instance, cursor=settled.cursor)
    assert _check_requested(after, key)


def test_the_project_checks_its_partitioned_assets_with_upstreams():
    graph = defs.resolve_asset_graph()
    checked = {key.asset_key.to_user_string() for key in graph.asset_check_keys if key.name == staleness.CHECK_NAME}
    assert checked == {"fashion_detector", "dcgan_training_set", "dcgan", "pattern_patches", "pattern_dcgan", "tryon_model"}
    for name in checked:  # never blocking: a stale GAN must not stop the report
        (spec,) = [s for s in graph.get_checks_for_asset(dg.AssetKey(name)) if s.name == staleness.CHECK_NAME] \
            if hasattr(graph, "get_checks_for_asset") else [None]
        assert spec is None or not spec.blocking
