"""Checks bind to the materialization they evaluated (``lineage.failed_checks`` / ``require_checks_passed``).

A blocking check counts as passed only when its latest result passed *and* targets the current
materialization: failed, PLANNED (a crashed run), missing, or an older materialization's = not passed.
"""
import dagster as dg
import pytest

from fashion_pipeline.common import lineage
from fashion_pipeline_tests.records import record, record_check

CHECK = "looks_good"


def _asset(behaviour: dict):
    """An asset with one blocking check; ``behaviour['mode']``: pass | fail | crash."""

    @dg.asset(check_specs=[dg.AssetCheckSpec(CHECK, asset="thing", blocking=True)])
    def thing():
        if behaviour["mode"] == "crash":
            raise RuntimeError("crashed before its checks ran")
        return dg.MaterializeResult(metadata={"mode": behaviour["mode"]},
                                    check_results=[dg.AssetCheckResult(check_name=CHECK,
                                                                       passed=behaviour["mode"] == "pass")])

    return thing


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _run(instance, behaviour, mode):
    behaviour["mode"] = mode
    return dg.materialize([_asset(behaviour)], instance=instance, raise_on_error=False)


def test_passed_on_the_current_materialization_counts(instance):
    _run(instance, {}, "pass")
    assert lineage.failed_checks(instance, "thing", [CHECK]) == {}
    lineage.require_checks_passed(instance, "thing", [CHECK])


def test_failed_is_refused(instance):
    _run(instance, {}, "fail")
    with pytest.raises(dg.Failure, match="check 'looks_good' failed in run") as raised:
        lineage.require_checks_passed(instance, "thing", [CHECK])
    assert raised.value.allow_retries is False


def test_a_later_crash_does_not_hide_an_earlier_failure(instance):
    behaviour = {}
    _run(instance, behaviour, "fail")
    crashed = _run(instance, behaviour, "crash")
    assert not crashed.success
    # the latest check record is the crashed run's PLANNED one; the current materialization is still the bad one
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("thing"), CHECK)])
    assert next(iter(latest.values())).run_id == crashed.run_id
    why = lineage.failed_checks(instance, "thing", [CHECK])[CHECK]
    assert "failed in run" in why and crashed.run_id not in why
    with pytest.raises(dg.Failure, match="failed in run"):
        lineage.require_checks_passed(instance, "thing", [CHECK])


def test_a_crash_before_materializing_does_not_discredit_the_current_pass(instance):
    behaviour = {}
    _run(instance, behaviour, "pass")
    assert not _run(instance, behaviour, "crash").success
    assert lineage.failed_checks(instance, "thing", [CHECK]) == {}


def test_planned_by_the_run_that_made_the_current_materialization_is_not_passed(instance):
    @dg.asset(check_specs=[dg.AssetCheckSpec(CHECK, asset="thing", blocking=True)])
    def thing():
        yield dg.Output(None, metadata={"n": 1})  # recorded as materialized ...
        raise RuntimeError("... then the step crashes before its check reports")

    good = {}
    _run(instance, good, "pass")
    result = dg.materialize([thing], instance=instance, raise_on_error=False)
    why = lineage.failed_checks(instance, "thing", [CHECK]).get(CHECK, "")
    assert "planned" in why and result.run_id in why


def test_a_check_never_evaluated_is_not_passed(instance):
    record(instance, "thing", {"n": 1})
    assert lineage.failed_checks(instance, "thing", [CHECK]) == {CHECK: "was never evaluated"}


def test_a_pass_on_an_older_materialization_does_not_count(instance):
    _run(instance, {}, "pass")
    record(instance, "thing", {"n": 2})  # a newer materialization nobody checked
    why = lineage.failed_checks(instance, "thing", [CHECK])[CHECK]
    assert "older materialization" in why
    with pytest.raises(dg.Failure, match="older materialization"):
        lineage.require_checks_passed(instance, "thing", [CHECK])


def test_a_runless_check_after_the_materialization_targets_it(instance):
    record(instance, "thing", {"n": 1})
    record_check(instance, "thing", CHECK, True)
    assert lineage.failed_checks(instance, "thing", [CHECK]) == {}
    record(instance, "thing", {"n": 2})
    assert CHECK in lineage.failed_checks(instance, "thing", [CHECK])


def test_per_partition(instance):
    for brand, passed in (("a", True), ("b", False)):
        record(instance, "brands", {"n": 1}, partition=brand)
        record_check(instance, "brands", CHECK, passed, partition=brand)
    assert lineage.failed_checks(instance, "brands", [CHECK], "a") == {}
    assert "failed" in lineage.failed_checks(instance, "brands", [CHECK], "b")[CHECK]
    record(instance, "brands", {"n": 2}, partition="a")
    assert "older materialization" in lineage.failed_checks(instance, "brands", [CHECK], "a")[CHECK]


def test_scrape_health_compares_with_the_last_scrape_whose_health_check_passed(instance):
    """A login wall gives 12 pins against 300 (red); next week's 12 are compared with the 300 again, not the 12."""
    from fashion_pipeline.pinterest.assets import scrape_health

    pins = {"found": 0}

    @dg.asset(check_specs=[dg.AssetCheckSpec("scrape_health", asset="board", blocking=True)])
    def board(context):
        baseline = lineage.last_passed_check(context.instance, "board", "scrape_health")
        previous = baseline.get("pins_found") if baseline else None
        healthy, reason = scrape_health(pins["found"], previous, 0.5)
        return dg.MaterializeResult(metadata={"pins_found": pins["found"]}, check_results=[dg.AssetCheckResult(
            check_name="scrape_health", passed=healthy, metadata={"pins_found": pins["found"], "reason": reason})])

    outcomes = []
    for found in (300, 12, 12, 290):
        pins["found"] = found
        result = dg.materialize([board], instance=instance, raise_on_error=False)
        (evaluation,) = result.get_asset_check_evaluations()
        outcomes.append((evaluation.passed, evaluation.metadata["reason"].text))
    assert [passed for passed, _ in outcomes] == [True, False, False, True]
    assert "of the 300 of its last healthy scrape" in outcomes[2][1]  # the second 12 still against the 300
    assert lineage.last_passed_check(instance, "board", "scrape_health")["pins_found"] == 290
