"""The soak's harness, short: the real daemon, the embedded site, two one-minute ticks of two brands, and
two faults on tick 2 (a login wall on one brand, kill -9 of the other's run worker as its downloads begin).

The same code as ``make soak`` (fashion_pipeline/soak), on a temporary DAGSTER_HOME and data root.
Takes 2-4 minutes when idle (the first tick waits for the next minute boundary); longer on a loaded machine,
where the drain waits for the runs it launched rather than a fixed time.
"""
import pytest

from fashion_pipeline.soak.harness import Soak


@pytest.mark.slow
def test_two_ticks_two_faults(tmp_path, monkeypatch):
    lines = []

    def log(line: str) -> None:
        print(line, flush=True)  # shown with -s, and by pytest when the test fails
        lines.append(line)

    # Soak.prepare sets the instance, data root and brands file in os.environ; monkeypatch restores them.
    for name in ("DAGSTER_HOME", "FASHION_PIPELINE_DATA", "FASHION_PIPELINE_SETTINGS", "FASHION_PIPELINE_BRANDS",
                 "FASHION_PIPELINE_PINTEREST_MODE", "PINTEREST_BASE_URL", "PINTEREST_EMAIL", "PINTEREST_PASSWORD",
                 "FASHION_PIPELINE_AUTOMATION_INTERVAL_S", "FASHION_PIPELINE_SOAK_DIR"):
        monkeypatch.delenv(name, raising=False)
    soak = Soak(tmp_path / "soak", ticks=2, brands=["Prada", "Chanel"],
                plan=["2:login_wall:0", "2:kill_worker:1"], log=log, settle_s=20,
                # The drain ends once every run it launched has finished and the dataset is materialized after the
                # last scrape (about 120-280 s at load ~9 here, where a fixed 150 s failed); 900 s only bounds it.
                drain_s=900)
    status = soak.run()
    output = "\n".join(lines)
    report = soak.summary
    checks = {c["name"]: c for c in report["checks"]}

    assert lines[-1] == f"soak: 2 ticks, {report['runs']} runs, 2 faults injected, 0 lost", output
    assert status == 0, output
    # Tick 1 commits every board's 20 pins; tick 2 adds 3 to Chanel's (Prada's scrape hits the wall).
    assert checks["committed_pins"]["details"]["lost"] == 0
    assert sum(len(pins) for pins in soak.ledger.values()) >= 43, soak.ledger
    wall, kill = soak.faults
    assert any("check scrape_health failed" in mark for mark in wall.evidence), wall.evidence
    assert any(mark.startswith(f"run {kill.target_run[:8]} FAILURE") for mark in kill.evidence), kill.evidence
    # 2 scrapes x 2 ticks, at least one dataset run by automation, maybe a retry of the killed run.
    assert report["runs"] >= 5
    assert checks["dataset_matches_clean_rebuild"]["passed"], checks["dataset_matches_clean_rebuild"]
