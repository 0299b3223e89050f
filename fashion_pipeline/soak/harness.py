"""Run the soak: daemon, site and one-minute scrapes on a temporary instance, faults injected, checks at the end.

Tick ``k`` is the k-th schedule tick the daemon launched (one run per brand). At tick 1 every board
shows ``Growth.start`` pins; a brand's board grows to ``start + per_tick * (k - 1)`` pins when its run of
tick ``k`` starts its step, so every healthy scrape commits new rows and drives ``pinterest_dataset`` by
automation. Growth follows the runs, not the clock: scrapes run one at a time in the ``pinterest`` pool
and fall minutes behind the ticks on a loaded machine, and a board grown at tick time let an earlier
tick's late run collect the pins a fault of tick ``k`` aimed at (that fault then never fired). The faults
of tick ``k`` are armed in the same poll, just after the growth, and disarmed when that run finishes:

  500 / slow / truncated   the downloads of the brand's new pins answer 500, stall past the download
                           timeout, or stop halfway (expected: counted download failures)
  login_wall / zero_pins   the board shows 3 pins then a login wall, or no pins (expected: scrape_health fails)
  kill_browser             Chromium is killed (SIGKILL) while the brand's feed is scrolled (expected: the
                           step fails and is retried)
  kill_worker              the run worker is killed (SIGKILL) when its first download arrives, its step
                           process left orphaned (expected: the run fails, the daemon retries it)
  kill_run_tree            the same, with the step process and its Chromium killed too
  restart_daemon           the daemon is stopped (SIGTERM) and started again while the tick runs
                           (expected: later ticks still run, nothing is left STARTED)

After the last tick the schedule is stopped (a stop file), the daemon drains (automation's last
dataset run), and ``checks`` runs. The last line: ``soak: N ticks, M runs, F faults injected, L lost``.

    python -m fashion_pipeline.soak --ticks 12 [--dir /tmp/soak] [--brands 3] [--plan 2:500:0,3:login_wall:1]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRANDS = ("Prada", "Chanel", "Dior", "Gucci")
# Two faults on some ticks (on different brands), so ten ticks hold every kind; tick 1 and the last are clean.
DEFAULT_PLAN = ("2:500:0", "2:login_wall:1", "3:slow:2", "4:zero_pins:0", "4:truncated:1", "5:kill_browser:2",
                "6:kill_worker:0", "7:restart_daemon:-", "8:kill_run_tree:1", "8:500:2")
KINDS = ("500", "slow", "truncated", "login_wall", "zero_pins", "kill_browser", "kill_worker", "kill_run_tree",
         "restart_daemon")
# What each fault must leave in Dagster's record.
EXPECTED = {
    "500": "counted download failures (failures_http_5xx_exhausted)",
    "slow": "counted download failures (failures_timeout)",
    "truncated": "counted download failures (failures_truncated / connection_error / corrupt)",
    "login_wall": "a failed scrape_health check",
    "zero_pins": "a failed scrape_health check",
    "kill_browser": "a failed step attempt (STEP_UP_FOR_RETRY / STEP_FAILURE)",
    "kill_worker": "a failed run; its work finished by the daemon's retry or by its orphaned step",
    "kill_run_tree": "a failed run, retried by the daemon",
    "restart_daemon": "later ticks launched by the restarted daemon",
}
SETTLE_S = 45.0
FIRST_TICK_WITHIN_S = 180.0  # the daemon loads the code location, then waits for the next minute
FAILURE_KEYS = {"500": ("failures_http_5xx_exhausted",), "slow": ("failures_timeout",),
                "truncated": ("failures_truncated", "failures_connection_error", "failures_corrupt", "failures_timeout")}


@dataclass
class Fault:
    tick: int
    kind: str
    brand: str | None  # slug; None for the daemon restart
    armed_at: float | None = None
    disarmed_at: float | None = None
    fired_at: float | None = None
    target_run: str | None = None
    note: str = ""
    evidence: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"tick {self.tick} {self.kind}" + (f" on {self.brand}" if self.brand else "")


def parse_plan(specs, slugs: list[str]) -> list[Fault]:
    """``tick:kind:brand-index`` items (``-`` for no brand) -> faults; a clear error naming the bad item."""
    faults = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in KINDS:
            raise ValueError(f"--plan item {spec!r}: expected tick:kind:brand-index with kind one of {', '.join(KINDS)}")
        brand = None
        if parts[1] != "restart_daemon":
            if not parts[2].isdigit() or int(parts[2]) >= len(slugs):
                raise ValueError(f"--plan item {spec!r}: brand index must be 0..{len(slugs) - 1} ({', '.join(slugs)})")
            brand = slugs[int(parts[2])]
        if int(parts[0]) < 2:
            raise ValueError(f"--plan item {spec!r}: faults start at tick 2 (tick 1 gives every brand its baseline)")
        faults.append(Fault(int(parts[0]), parts[1], brand))
    return faults


# ---- processes ------------------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def kill(pids) -> list[int]:
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


class Daemon:
    """``dagster-daemon run`` on the soak's code location, in a session of its own, logging to a file."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log, self.process = env, log, None
        self.starts = 0

    def start(self) -> None:
        command = [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-m", "fashion_pipeline.soak.definitions"]
        self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=self.log.open("a"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the daemon alone (as a service manager stops it); the whole group only if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# ---- the soak ---------------------------------------------------------------------------------------

class Soak:
    def __init__(self, root: Path, ticks: int, brands: list[str], plan: list[str] | None, drain_s: float = 1500.0,
                 log=print, settle_s: float = SETTLE_S):
        from fashion_pipeline.pinterest.brands import slugify

        self.root, self.ticks, self.brand_names, self.drain_s, self.log = root, ticks, brands, drain_s, log
        self.settle_s = settle_s
        self.slugs = [slugify(name) for name in brands]
        self.faults = parse_plan(DEFAULT_PLAN if plan is None else plan, self.slugs)
        self.faults = [f for f in self.faults if f.tick <= ticks]
        self.home, self.data = root / "home", root / "data"
        self.tick_times: list[str] = []  # scheduled execution times, in tick order
        self.ledger: dict[str, set[str]] = {}
        self.unverified: list[str] = []
        self.seen_storage_id = 0
        self.grown_runs: set[str] = set()  # runs whose brand's board was grown for their tick
        self.started = time.time()

    # ---- set-up --------------------------------------------------------------------------------
    def prepare(self) -> dict:
        from fashion_pipeline.soak.site import Growth, SoakSite

        for folder in (self.home, self.data):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")  # the project's instance config, as is
        self.site = SoakSite(self.root / "site", self.brand_names, Growth(ticks=self.ticks + 2))
        self.site.start()
        brands = [{"name": name, "slug": slug, "board": self.site.catalog.board_for_brand(name).path}
                  for name, slug in zip(self.brand_names, self.slugs)]
        (self.root / "brands.yaml").write_text(yaml.safe_dump({"brands": brands}, sort_keys=False))
        env = {
            "DAGSTER_HOME": str(self.home), "FASHION_PIPELINE_DATA": str(self.data),
            "FASHION_PIPELINE_SETTINGS": "demo", "FASHION_PIPELINE_BRANDS": str(self.root / "brands.yaml"),
            "FASHION_PIPELINE_PINTEREST_MODE": "live", "PINTEREST_BASE_URL": self.site.base_url,
            "PINTEREST_EMAIL": "soak@fashion-pipeline.local", "PINTEREST_PASSWORD": "embedded-site",
            "FASHION_PIPELINE_AUTOMATION_INTERVAL_S": "10", "FASHION_PIPELINE_SOAK_DIR": str(self.root),
        }
        os.environ.update(env)  # this process reads the same instance, brands file and data root
        return {**os.environ, **env}

    # ---- records ---------------------------------------------------------------------------------
    def soak_runs(self, instance) -> list:
        import dagster as dg
        from dagster._core.storage.tags import SCHEDULE_NAME_TAG

        from fashion_pipeline.soak.definitions import SCHEDULE_NAME

        return instance.get_runs(filters=dg.RunsFilter(tags={SCHEDULE_NAME_TAG: SCHEDULE_NAME}))

    def tick_of(self, run) -> int | None:
        from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

        when = run.tags.get(SCHEDULED_EXECUTION_TIME_TAG)
        return self.tick_times.index(when) + 1 if when in self.tick_times else None

    def note_ticks(self, instance) -> list[int]:
        """New ticks seen since the last call (1-based)."""
        from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

        times = sorted({r.tags[SCHEDULED_EXECUTION_TIME_TAG] for r in self.soak_runs(instance)
                        if SCHEDULED_EXECUTION_TIME_TAG in r.tags and "dagster/parent_run_id" not in r.tags})
        new = [t for t in times if t not in self.tick_times]
        self.tick_times += new
        return [self.tick_times.index(t) + 1 for t in new]

    def update_ledger(self, instance) -> None:
        """Read the pins each newly recorded scrape committed, right after it is recorded."""
        from fashion_pipeline.soak.checks import committed_pin_ids, scrape_records

        for record in scrape_records(instance, self.seen_storage_id):
            self.seen_storage_id = max(self.seen_storage_id, record.storage_id)
            brand = record.asset_materialization.partition
            pins, problem = committed_pin_ids(self.data, record)
            if pins is None:
                self.unverified.append(f"{brand} run {record.run_id}: {problem}")
            else:
                self.ledger.setdefault(brand, set()).update(pins)

    def grow_for_started_runs(self, instance) -> None:
        """Grow a brand's board for the tick of its run whose step has just started (before that run's faults
        are armed, so they aim at the pins this run is the first to see)."""
        import dagster as dg

        running = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        for run in running:
            tick, slug = self.tick_of(run), run.tags.get("dagster/partition")
            if run.run_id in self.grown_runs or tick is None or slug not in self.slugs:
                continue
            if instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
                self.grown_runs.add(run.run_id)
                new = self.site.grow_brand(slug, tick - 1)
                if new:
                    self.log(f"[{self.elapsed()}] tick {tick} {slug}: run {run.run_id[:8]} started, "
                             f"board +{len(new)} pins")

    def target_run(self, instance, fault: Fault):
        """The brand's run of the fault's tick (the first launched, not a retry of it)."""
        for run in self.soak_runs(instance):
            if (run.tags.get("dagster/partition") == fault.brand and self.tick_of(run) == fault.tick
                    and "dagster/parent_run_id" not in run.tags):
                return run
        return None

    def in_progress_run(self, instance, slug: str):
        """The brand's run whose step is executing (several may be STARTED, waiting for the pool)."""
        import dagster as dg

        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED],
                                                      tags={"dagster/partition": slug}))
        executing = []
        for run in runs:
            starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
            if starts:
                executing.append((starts[-1].timestamp, run))
        return max(executing, key=lambda pair: pair[0])[1] if executing else None

    def worker_pid(self, instance, run_id: str) -> int | None:
        for entry in instance.all_logs(run_id):
            match = re.search(r"Started process for run \(pid: (\d+)\)", entry.message or "")
            if match:
                return int(match.group(1))
        return None

    # ---- faults ----------------------------------------------------------------------------------
    def arm(self, instance, fault: Fault) -> None:
        from fashion_pipeline.soak.site import BOARD_FAULTS, IMAGE_FAULTS, Trigger

        fault.armed_at = time.time()
        collected = self.collected(fault.brand)
        if fault.kind in IMAGE_FAULTS and not self.site.new_pins(fault.brand, collected):
            fault.note = "the board had no pin left to download when the run started: nothing to aim at"
        elif fault.kind in IMAGE_FAULTS + BOARD_FAULTS:
            fault.aim = self.site.arm(fault.kind, fault.brand, collected)
        elif fault.kind == "kill_browser":
            fault.trigger = Trigger("feed", fault.brand, lambda: self.kill_browser(instance, fault))
            self.site.listen(fault.trigger)
        elif fault.kind in ("kill_worker", "kill_run_tree"):
            hexes = frozenset(pin.image.hex for pin in self.site.new_pins(fault.brand, collected))
            fault.trigger = Trigger("image", fault.brand, lambda: self.kill_worker(instance, fault), hexes)
            self.site.listen(fault.trigger)
        self.log(f"[{self.elapsed()}] armed {fault.label}")

    def collected(self, slug: str) -> set[str]:
        """Pin ids in the brand's manifest now."""
        import pandas as pd

        path = self.data / "pinterest_images" / slug / "manifest.parquet"
        return set(pd.read_parquet(path, columns=["pin_id"])["pin_id"].astype(str)) if path.is_file() else set()

    def kill_browser(self, instance, fault: Fault) -> None:
        run = instance.get_run_by_id(fault.target_run) if fault.target_run else self.in_progress_run(instance, fault.brand)
        pid = self.worker_pid(instance, run.run_id) if run else None
        if pid is None:
            fault.note = "no run in progress with a known worker pid when the feed was scrolled"
            return
        browsers = [p for p in descendants(pid) if "chrom" in process_name(p) and process_name(p) != "chromedriver"
                    and process_name(self._parent(p)) == "chromedriver"]
        killed = kill(browsers)
        fault.target_run, fault.fired_at = run.run_id, time.time() if killed else None
        fault.note = f"SIGKILL to Chromium {killed} of run {run.run_id[:8]} (worker {pid}) during its scroll"
        self.log(f"[{self.elapsed()}] {fault.label}: {fault.note}")

    def kill_worker(self, instance, fault: Fault) -> None:
        run = instance.get_run_by_id(fault.target_run) if fault.target_run else self.in_progress_run(instance, fault.brand)
        pid = self.worker_pid(instance, run.run_id) if run else None
        if pid is None:
            fault.note = "no run in progress with a known worker pid when its download began"
            return
        victims = [pid] + (descendants(pid) if fault.kind == "kill_run_tree" else [])
        killed = kill(victims)
        fault.target_run, fault.fired_at = run.run_id, time.time() if killed else None
        fault.note = f"SIGKILL to {len(killed)} processes (worker {pid}) of run {run.run_id[:8]} as its downloads began"
        self.log(f"[{self.elapsed()}] {fault.label}: {fault.note}")

    @staticmethod
    def _parent(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    def restart_daemon(self, instance, fault: Fault, daemon: Daemon) -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not instance.get_runs(filters=self._started_filter()):
            time.sleep(0.5)  # restart while a run is in flight
        daemon.stop()
        fault.fired_at = time.time()
        daemon.start()
        fault.note = f"SIGTERM to the daemon, started again ({daemon.starts} starts)"
        self.log(f"[{self.elapsed()}] {fault.label}: {fault.note}")

    @staticmethod
    def _started_filter():
        import dagster as dg

        return dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])

    def maybe_arm(self, instance, fault: Fault) -> None:
        """Arm a fault once its target run's step has started: runs queue behind the ``pinterest`` pool, so
        an earlier tick's run of the same brand may scrape after this tick began, and must not meet it."""
        import dagster as dg

        if fault.armed_at is not None or fault.kind == "restart_daemon" or fault.tick > len(self.tick_times):
            return
        run = self.target_run(instance, fault)
        if run is not None and run.status == dg.DagsterRunStatus.STARTED and \
                instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
            fault.target_run = run.run_id
            self.arm(instance, fault)

    def maybe_disarm(self, instance, fault: Fault) -> None:
        if fault.disarmed_at is not None or fault.kind == "restart_daemon":
            return
        run = self.target_run(instance, fault)
        if run is not None and run.is_finished and fault.armed_at is None:  # finished before its step started
            fault.armed_at = fault.disarmed_at = time.time()
            fault.note = f"run {run.run_id[:8]} finished ({run.status.value}) before its step started: not armed"
            self.log(f"[{self.elapsed()}] {fault.label}: {fault.note}")
            return
        if fault.armed_at is None:
            return
        if run is not None and run.is_finished:
            fault.disarmed_at = time.time()
            fault.target_run = fault.target_run or run.run_id
            aim = getattr(fault, "aim", None)
            if aim is not None:
                self.site.disarm(aim)
                fault.fired_at = fault.armed_at if aim.hits else None
                fault.note = f"{aim.hits} requests answered with the fault"
            trigger = getattr(fault, "trigger", None)
            if trigger is not None:
                self.site.unlisten(trigger)
            state = "fired" if fault.fired_at else "NOT fired"
            self.log(f"[{self.elapsed()}] disarmed {fault.label}: {state}; {fault.note}")

    def elapsed(self) -> str:
        return f"{time.time() - self.started:6.0f}s"

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        import dagster as dg

        from fashion_pipeline.soak import checks

        env = self.prepare()
        daemon = Daemon(env, self.root / "daemon.log")
        try:
            # The instance's SQLite storage is created here, before the daemon opens it: two processes creating
            # it at once stamp its schema twice ("alembic_version has more than one head").
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                daemon.start()
                self.log(f"soak: {self.ticks} ticks, brands {', '.join(self.slugs)}, site {self.site.base_url}, "
                         f"instance {self.home}, data {self.data}; {len(self.faults)} faults planned")
                self.loop(instance, daemon)
                results = self.finish(instance, daemon)
        finally:
            daemon.stop()
            self.site.stop()
        return results

    def loop(self, instance, daemon: Daemon) -> None:
        stop_at = None
        while True:
            if not daemon.alive():
                raise RuntimeError(f"dagster-daemon exited ({daemon.process.returncode}); see {daemon.log}")
            if not self.tick_times and time.time() - self.started > FIRST_TICK_WITHIN_S:
                raise RuntimeError(f"no schedule tick within {FIRST_TICK_WITHIN_S:.0f}s; daemon log {daemon.log}:\n"
                                   + daemon.log.read_text(errors="replace")[-3000:])
            for tick in self.note_ticks(instance):
                if tick > self.ticks:
                    continue
                self.log(f"[{self.elapsed()}] tick {tick}: {len(self.brand_names)} scrapes launched")
                for fault in (f for f in self.faults if f.tick == tick and f.kind == "restart_daemon"):
                    self.restart_daemon(instance, fault, daemon)
                if tick == self.ticks:
                    (self.root / "stop").touch()  # later ticks are skipped
                    stop_at = time.time()
            self.grow_for_started_runs(instance)
            for fault in self.faults:
                self.maybe_arm(instance, fault)
                self.maybe_disarm(instance, fault)
            self.update_ledger(instance)
            if stop_at is not None and self.drained(instance):
                return
            if stop_at is not None and time.time() - stop_at > self.drain_s:
                self.log(f"[{self.elapsed()}] not drained after {self.drain_s:.0f}s ({self.unfinished(instance)} "
                         f"runs unfinished); checking as it stands")
                return
            if stop_at is not None and time.time() - getattr(self, "_drain_logged", stop_at) > 60:
                # The drain waits for the runs the soak launched, however slow the machine; say where it stands.
                self._drain_logged = time.time()
                self.log(f"[{self.elapsed()}] draining: {self.unfinished(instance)} runs unfinished")
            time.sleep(1.0)

    @staticmethod
    def unfinished(instance) -> int:
        import dagster as dg

        from fashion_pipeline.soak.checks import UNFINISHED

        return len(instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED))))

    def drained(self, instance) -> bool:
        """Every run finished, every fault disarmed, the dataset materialized after the last scrape, and
        nothing changed for ``settle_s`` (the daemon's run retries and automation come a few seconds late)."""
        import dagster as dg

        from fashion_pipeline.soak.checks import UNFINISHED

        state = sorted((r.run_id, r.status.value) for r in instance.get_runs())
        if state != getattr(self, "_state", None):
            self._state, self._changed_at = state, time.time()
        if time.time() - self._changed_at < self.settle_s:
            return False
        if instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)), limit=1):
            return False
        if any(f.armed_at is not None and f.disarmed_at is None and f.kind != "restart_daemon" for f in self.faults):
            return False
        scrape = instance.fetch_materializations(dg.AssetKey("pinterest_images"), limit=1).records
        dataset = instance.fetch_materializations(dg.AssetKey("pinterest_dataset"), limit=1).records
        return bool(scrape and dataset and dataset[0].storage_id > scrape[0].storage_id)

    # ---- the end -----------------------------------------------------------------------------------
    def finish(self, instance, daemon: Daemon) -> int:
        from fashion_pipeline.soak import checks, evidence

        daemon.stop()
        self.update_ledger(instance)
        for fault in self.faults:
            evidence.collect(instance, fault, self)
        results = [
            checks.committed_pins(self.data, self.ledger, self.unverified),
            checks.no_half_written_files(self.data),
            checks.no_run_left_running(instance),
            evidence.faults_shown(self.faults),
            checks.dataset_matches_clean_rebuild(instance, self.data, self.root),
        ]
        for result in results:
            self.log(result.line())
        for fault in self.faults:
            self.log(f"  {fault.label}: {'; '.join(fault.evidence) or 'NO EVIDENCE'} [{fault.note}]")
        runs = len(instance.get_runs())
        fired = sum(1 for f in self.faults if f.fired_at is not None)
        lost = results[0].details["lost"] + len(self.unverified)
        report = {"ticks": len([t for t in self.tick_times[: self.ticks]]), "runs": runs, "faults_injected": fired,
                  "lost": lost, "seconds": round(time.time() - self.started), "site": self.site.stats(),
                  "checks": [asdict(r) for r in results],
                  "faults": [{k: v for k, v in asdict(f).items()} for f in self.faults]}
        (self.root / "soak_report.json").write_text(json.dumps(report, indent=1, default=str))
        self.log(f"report: {self.root / 'soak_report.json'}; daemon log: {daemon.log}")
        self.log(f"soak: {report['ticks']} ticks, {runs} runs, {fired} faults injected, {lost} lost")
        self.summary = report
        return 0 if all(r.passed for r in results) else 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fashion_pipeline.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=9, help="schedule ticks (one a minute) before draining")
    parser.add_argument("--brands", type=int, default=3, help=f"how many of {', '.join(DEFAULT_BRANDS)} to scrape")
    parser.add_argument("--plan", default=None,
                        help="comma-separated tick:kind:brand-index faults (default: one of each kind, ticks 2-8)")
    parser.add_argument("--dir", type=Path, default=None, help="soak folder (default: a new temporary one, kept)")
    parser.add_argument("--drain-s", type=float, default=1500.0,
                        help="upper bound on the wait for the last runs after the last tick (the drain ends as soon "
                             "as every run has finished and the dataset is materialized after the last scrape)")
    args = parser.parse_args(argv)
    if not 1 <= args.brands <= len(DEFAULT_BRANDS):
        parser.error(f"--brands must be 1..{len(DEFAULT_BRANDS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="fashion-soak-"))
    if (root / "home").exists():
        raise SystemExit(f"{root} already holds a soak (home/): give a new --dir")
    plan = None if args.plan is None else [item for item in args.plan.split(",") if item]
    soak = Soak(root.resolve(), args.ticks, list(DEFAULT_BRANDS[: args.brands]), plan, args.drain_s)
    return soak.run()
