"""The demo driver's side-by-side training steps: the gpu pool is widened for them and put back."""
import dagster as dg
import pytest

from fashion_pipeline import demo


def _slots(instance) -> int | None:
    storage = instance.event_log_storage
    if demo.TRAINING_POOL not in storage.get_concurrency_keys():
        return None
    return storage.get_concurrency_info(demo.TRAINING_POOL).slot_count


def test_widened_pool_is_put_back_when_it_had_no_limit_of_its_own():
    with dg.instance_for_test() as instance:
        assert _slots(instance) is None
        with demo._training_pool_widened(instance, 3):
            assert _slots(instance) == 3
        assert _slots(instance) is None


def test_widened_pool_restores_a_configured_limit_even_after_a_failure():
    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(demo.TRAINING_POOL, 1)
        with pytest.raises(RuntimeError):
            with demo._training_pool_widened(instance, 5):
                assert _slots(instance) == 5
                raise RuntimeError("a step failed")
        assert _slots(instance) == 1


def test_partition_needs_exactly_one_asset():
    with pytest.raises(SystemExit):
        demo.main(["--only", "dcgan", "pattern_dcgan", "--partition", "dots"])


def test_a_failed_child_is_reported_as_a_failed_step(tmp_path, monkeypatch):
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: type("Done", (), {"returncode": 1})())
    rows = demo._child_step("pattern_dcgan", "dots", 1, tmp_path)
    assert rows == [{"step": "pattern_dcgan[dots]", "success": False, "seconds": 0.0, "metadata_kb": 0.0}]


class _FakeBackground:
    def __init__(self, rows):
        self.rows_to_give, self.rows = rows, None

    def join(self):
        self.rows = self.rows_to_give
        return self.rows


def _fake_chain(monkeypatch, seen):
    monkeypatch.setattr(demo, "CHAIN", [("a", None), ("b", None), ("c", None), ("d", None)])
    monkeypatch.setattr(demo, "BACKGROUND", ["b"])
    monkeypatch.setattr(demo, "WAITS_FOR_BACKGROUND", {"d"})
    monkeypatch.setattr(demo, "_materialize_one", lambda assets, name, *rest: seen.append(name) or
                        {"step": name, "success": True, "seconds": 0.0, "metadata_kb": 0.0})
    monkeypatch.setattr(demo, "_assets_and_checks", lambda defs: [])
    import fashion_pipeline.definitions as definitions

    monkeypatch.setattr(definitions, "defs", type("Defs", (), {"assets": [], "resources": {}, "asset_checks": []})())
    monkeypatch.setattr(demo, "_partition_keys", lambda assets_def, spec: [None])
    monkeypatch.setattr(demo, "_lookup", lambda defs: {name: object() for name in "abcd"})


def test_background_steps_are_left_to_the_branch_and_joined_before_the_step_that_needs_them(monkeypatch):
    seen = []
    _fake_chain(monkeypatch, seen)
    background = _FakeBackground([{"step": "b", "success": True, "seconds": 1.0, "metadata_kb": 0.0}])
    rows = demo.run_chain(instance=object(), background=background)
    assert seen == ["a", "c", "d"]
    assert [row["step"] for row in rows] == ["a", "c", "d", "b"]


def test_a_failed_background_branch_stops_the_chain_before_the_step_that_needs_it(monkeypatch):
    seen = []
    _fake_chain(monkeypatch, seen)
    background = _FakeBackground([{"step": "background: b", "success": False, "seconds": 0.0, "metadata_kb": 0.0}])
    with pytest.raises(SystemExit, match="background: b"):
        demo.run_chain(instance=object(), background=background)
    assert seen == ["a", "c"]
