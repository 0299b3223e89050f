"""GPU leases on one host, with 2 and 4 GPUs simulated (FASHION_PIPELINE_GPUS): no CUDA needed.

Every holder runs in its own process, as parallel runs do: flock excludes processes, and a killed
process's locks go with it.
"""

import os
import signal
import time
from multiprocessing import get_context
from pathlib import Path

import pytest

from fashion_pipeline.common import gpu_lease

SPAWN = get_context("spawn")


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """Simulate a host with N GPUs; leases in a fresh folder (the env reaches spawned processes)."""
    leases = tmp_path / "leases"
    monkeypatch.setenv(gpu_lease.LEASE_DIR_ENV_VAR, str(leases))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def simulate(count: int) -> Path:
        monkeypatch.setenv(gpu_lease.GPUS_ENV_VAR, str(count))
        return leases

    return simulate


def _hold_and_check(count: int, work: str, name: str) -> None:
    """A run: lease, claim each index with an exclusive marker (fails if another holder has it), hold, release."""
    work_dir = Path(work)
    with gpu_lease.lease_gpus(count, poll_s=0.05) as lease:
        claimed = []
        for index in lease.indices:
            try:
                os.close(os.open(work_dir / f"in_use_{index}", os.O_CREAT | os.O_EXCL))
                claimed.append(index)
            except FileExistsError:
                (work_dir / f"collision_{name}_{index}").touch()
        (work_dir / f"lease_{name}").write_text(",".join(map(str, lease.indices)) + "|" + lease.env["CUDA_VISIBLE_DEVICES"])
        time.sleep(0.3)  # overlap with the other holders
        for index in claimed:
            os.remove(work_dir / f"in_use_{index}")


@pytest.mark.parametrize("total, per_run", [(2, 1), (4, 1), (4, 2)])
def test_parallel_runs_never_share_a_gpu(gpus, tmp_path, total, per_run):
    gpus(total)
    runs = 2 * total // per_run  # twice as many runs as fit at once: half of them wait for a free GPU
    workers = [SPAWN.Process(target=_hold_and_check, args=(per_run, str(tmp_path), f"r{i}")) for i in range(runs)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * runs
    assert not list(tmp_path.glob("collision_*"))
    leases = [p.read_text().split("|") for p in tmp_path.glob("lease_*")]
    assert len(leases) == runs
    for indices, visible in leases:
        assert len(indices.split(",")) == per_run and visible == indices  # the child sees exactly its GPUs
    assert {int(i) for indices, _ in leases for i in indices.split(",")} == set(range(total))
    assert gpu_lease.held_indices() == []


def _hold_forever(count: int, ready: str) -> None:
    lease = gpu_lease.acquire(count)
    Path(ready).write_text(",".join(map(str, lease.indices)))
    time.sleep(600)


def test_a_killed_run_releases_its_gpus(gpus, tmp_path):
    gpus(2)
    ready = tmp_path / "ready"
    worker = SPAWN.Process(target=_hold_forever, args=(2, str(ready)))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.read_text() == "0,1"
        assert gpu_lease.held_indices() == [0, 1]
        with pytest.raises(gpu_lease.GpuLeaseError, match="no 1 free GPU"):
            gpu_lease.acquire(1, timeout_s=0)
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # a crash: no finally, no release
        worker.join(30)
    assert worker.exitcode == -signal.SIGKILL
    assert gpu_lease.held_indices() == []
    lease = gpu_lease.acquire(2, timeout_s=0)
    assert lease.indices == (0, 1)
    lease.release()


def test_more_gpus_than_the_host_has_is_refused_at_once(gpus):
    gpus(2)
    with pytest.raises(gpu_lease.GpuLeaseRefused, match="asked for 4 GPUs but this host has 2"):
        gpu_lease.acquire(4)  # no timeout: it must not wait for what can never be free


def test_no_gpu_is_the_cpu_and_sets_nothing(gpus):
    gpus(0)
    with gpu_lease.lease_gpus(2) as lease:
        assert lease.is_cpu and lease.env == {} and lease.device == "cpu"


def test_a_visible_subset_is_leased_by_physical_id(gpus, monkeypatch):
    leases = gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with gpu_lease.lease_gpus(1) as first, gpu_lease.lease_gpus(1) as second:
        assert (first.device, first.env) == ("cuda:0", {"CUDA_VISIBLE_DEVICES": "2"})
        assert (second.device, second.env) == ("cuda:1", {"CUDA_VISIBLE_DEVICES": "3"})
        assert sorted(p.name for p in leases.iterdir()) == ["gpu2.lock", "gpu3.lock"]


def test_cli_runs_a_command_on_its_own_gpus(gpus, capfd):
    gpus(4)
    with gpu_lease.lease_gpus(1):  # GPU 0 is taken by another run
        code = gpu_lease.main(["run", "--gpus", "2", "--", "sh", "-c", "echo child=$CUDA_VISIBLE_DEVICES"])
    assert code == 0
    assert "child=1,2" in capfd.readouterr().out


# --- through Dagster: the ComputeDevice resource holds the lease for the step --------------------------------


def _materialize_gpu_step(nproc: int, rendezvous: str, name: str) -> dict:
    """One run of a gpu-pool asset in its own process, as the default run launcher starts it."""
    import dagster as dg

    from fashion_pipeline.common.resources import ComputeDevice

    @dg.asset(pool="gpu")
    def train(context: dg.AssetExecutionContext, compute: ComputeDevice) -> dg.MaterializeResult:
        env = compute.lease(nproc, log=context.log.info).env
        (Path(rendezvous) / name).touch()
        deadline = time.monotonic() + 60
        while len(list(Path(rendezvous).iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        overlapped = len(list(Path(rendezvous).iterdir())) >= 2
        return dg.MaterializeResult(metadata={"cuda_visible_devices": env["CUDA_VISIBLE_DEVICES"],
                                              "held_during_step": str(gpu_lease.held_indices()),
                                              "overlapped": overlapped})

    result = dg.materialize([train], resources={"compute": ComputeDevice()})
    metadata = result.asset_materializations_for_node("train")[0].metadata
    return {key: value.value for key, value in metadata.items()}


def test_two_gpu_pool_runs_each_get_their_own_gpus_until_the_step_ends(gpus, tmp_path):
    gpus(4)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    with SPAWN.Pool(2) as pool:
        results = pool.starmap(_materialize_gpu_step, [(2, str(rendezvous), "a"), (2, str(rendezvous), "b")])
    assert all(r["overlapped"] for r in results)  # both steps held their leases at the same time
    visible = [set(r["cuda_visible_devices"].split(",")) for r in results]
    assert all(len(v) == 2 for v in visible) and not visible[0] & visible[1]
    assert visible[0] | visible[1] == {"0", "1", "2", "3"}
    assert gpu_lease.held_indices() == []  # released at teardown


def test_a_step_asking_for_more_gpus_than_the_host_has_fails_before_launch(gpus, tmp_path):
    import dagster as dg

    from fashion_pipeline.common.resources import ComputeDevice

    gpus(2)
    launched = tmp_path / "launched"

    @dg.asset(pool="gpu")
    def train(compute: ComputeDevice) -> None:
        compute.lease(4)
        launched.touch()  # where the training subprocess would start

    result = dg.materialize([train], resources={"compute": ComputeDevice()}, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "asked for 4 GPUs but this host has 2" in failure.message
    assert not launched.exists()


def test_cpu_device_takes_no_lease(gpus):
    from fashion_pipeline.common.resources import ComputeDevice

    gpus(2)
    assert ComputeDevice(device="cpu").lease(2).is_cpu
    assert gpu_lease.held_indices() == []


# --- the lease lives as long as the process on the GPU -------------------------------------------------------

TRAINER = """
import os, sys, time
from pathlib import Path
rendezvous = Path(sys.argv[1])
(rendezvous / "trainer.part").write_text(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES', '')}")
os.replace(rendezvous / "trainer.part", rendezvous / "trainer")
time.sleep(600)  # "training"
"""


def _alive(pid: int) -> bool:
    """Running (a zombie has exited: its descriptors, and so its locks, are gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _step_launching_a_trainer(rendezvous: str) -> None:
    """A gpu-pool step that launches its trainer through Pipes (``run_trainer``), as fashion_detector and dcgan do."""
    import sys

    import dagster as dg

    from fashion_pipeline.common.pipes import run_trainer
    from fashion_pipeline.common.resources import ComputeDevice

    @dg.asset(pool="gpu")
    def train(context: dg.AssetExecutionContext, compute: ComputeDevice,
              pipes_subprocess_client: dg.PipesSubprocessClient):
        env = compute.training_env(1)
        return run_trainer(context, pipes_subprocess_client, [sys.executable, "-c", TRAINER, rendezvous], env,
                           lease=compute.lease(1))

    dg.materialize([train], resources={"compute": ComputeDevice(), "pipes_subprocess_client": dg.PipesSubprocessClient()})


def _wait_for(path: Path, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def test_a_killed_step_frees_its_gpu_only_when_its_trainer_is_gone(gpus, tmp_path):
    gpus(1)
    step = SPAWN.Process(target=_step_launching_a_trainer, args=(str(tmp_path),))
    step.start()
    pid, visible = _wait_for(tmp_path / "trainer").split()
    trainer = int(pid)
    try:
        assert visible == "0" and gpu_lease.held_indices() == [0]
        os.kill(step.pid, signal.SIGKILL)  # the step dies; its trainer must not go on alone on GPU 0
        step.join(10)
        deadline = time.monotonic() + 15
        second = None
        while second is None and time.monotonic() < deadline:
            try:
                second = gpu_lease.acquire(1, timeout_s=0)  # a second run asking for the only GPU
            except gpu_lease.GpuLeaseError:
                time.sleep(0.02)
                continue
            # granted: the first trainer must be gone by now, never still running on the GPU
            assert not _alive(trainer), "a second run got GPU 0 while the killed step's trainer still ran on it"
        assert second is not None, "the GPU was never freed: the trainer outlived its step"
        assert second.indices == (0,)
        second.release()
    finally:
        if _alive(trainer):
            os.kill(trainer, signal.SIGKILL)


def _hold_and_launch(rendezvous: str) -> None:
    """A step that holds the lease and launches a child that shares it (``pass_fds``), without the death signal."""
    import subprocess
    import sys

    lease = gpu_lease.acquire(1)
    subprocess.Popen([sys.executable, "-c", TRAINER, rendezvous], pass_fds=tuple(lease.fds))
    time.sleep(600)


def test_the_trainer_holds_the_lease_as_long_as_it_runs(gpus, tmp_path):
    gpus(1)
    step = SPAWN.Process(target=_hold_and_launch, args=(str(tmp_path),))
    step.start()
    trainer = int(_wait_for(tmp_path / "trainer").split()[0])
    try:
        os.kill(step.pid, signal.SIGKILL)
        step.join(10)
        time.sleep(0.3)
        assert _alive(trainer) and gpu_lease.held_indices() == [0]  # the step is gone; the trainer still holds GPU 0
        with pytest.raises(gpu_lease.GpuLeaseError):
            gpu_lease.acquire(1, timeout_s=0)
    finally:
        os.kill(trainer, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while gpu_lease.held_indices() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gpu_lease.held_indices() == []
