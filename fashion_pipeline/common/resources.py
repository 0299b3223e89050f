"""Dagster resources shared by every stage."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from fashion_pipeline.common.paths import DATA_ENV_VAR, asset_dir, resolve_data_root


class DataRoot(dg.ConfigurableResource):
    """The one folder every asset writes under, laid out by asset name.

    ``root`` set in resource config wins; otherwise ``FASHION_PIPELINE_DATA``; otherwise ``./data``.
    """

    root: Optional[str] = None

    @property
    def path(self) -> Path:
        return resolve_data_root(self.root)

    def asset_dir(self, asset_name: str, partition: str | None = None) -> Path:
        return asset_dir(self.path, asset_name, partition)


class ComputeDevice(dg.ConfigurableResource):
    """Which torch device training and inference use: ``auto`` takes the GPU when there is one.

    With ``auto`` (or ``cuda``) on a host with several GPUs, a step takes a GPU lease
    (``fashion_pipeline.common.gpu_lease``) the first time it asks for a device, and holds it until
    the step ends (or its process dies): raise the ``gpu`` pool limit to the number of GPUs and
    parallel runs each train on GPUs of their own. ``cpu`` or ``cuda:<i>`` take no lease.
    """

    device: str = "auto"
    lease_timeout_s: float = Field(3600.0, description="how long a step waits for a free GPU before it fails")

    _lease: Optional[Any] = PrivateAttr(default=None)
    _holder: str = PrivateAttr(default="")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._holder = f"run {context.run.run_id}" if context.run else ""

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def lease(self, gpus: int = 1, log=None):
        """This step's GPUs (a ``gpu_lease.Lease``; empty = the CPU), leased on first use, held until teardown."""
        from fashion_pipeline.common import gpu_lease

        if self.device not in ("auto", "cuda"):
            return gpu_lease.Lease()
        if self._lease is None:
            try:
                self._lease = gpu_lease.acquire(gpus, holder=self._holder, timeout_s=self.lease_timeout_s, on_wait=log)
            except gpu_lease.GpuLeaseRefused as error:
                raise dg.Failure(str(error), allow_retries=False) from error
        elif self._lease.indices and len(self._lease.indices) < gpus:
            raise dg.Failure(f"this step already holds GPUs {self._lease.indices}; it cannot grow to {gpus}",
                             allow_retries=False)
        return self._lease

    def training_env(self, gpus: int = 1, log=None) -> dict:
        """Environment for a training subprocess: idle OpenMP threads sleep instead of spinning (on a shared
        CPU spinning made training 3-5x slower), and on a multi-GPU host the step's leased GPUs
        (``CUDA_VISIBLE_DEVICES``; refused before launch when the host has fewer). No GPU: no lease."""
        import os

        env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), **self.lease(gpus, log=log).env}
        if env.get("CUDA_VISIBLE_DEVICES") and log is not None:
            log(f"GPU lease: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}")
        return env

    def torch_device(self):
        from fashion_pipeline.common.device import pick_device

        lease = self.lease(1)
        return pick_device(lease.device if lease.indices else self.device)


__all__ = ["DataRoot", "ComputeDevice", "DATA_ENV_VAR"]
