"""Where the pipeline runs: ``local`` (one host, Dagster's default executor) or ``k8s`` (one pod per step).

``FASHION_PIPELINE_DEPLOYMENT`` selects it, as Dagster's ``project_fully_featured`` picks its
resources by deployment; no asset changes between the two. The instance side (Postgres storage,
``K8sRunLauncher``, the data volume, the pool limits) is the instance's config: ``deploy/k8s/values.yaml``.

Why ``k8s_job_executor`` with ``per_step_k8s_config`` rather than ``PipesK8sClient``: the training
assets already run their training through Pipes (``PipesSubprocessClient``). With one pod per step, that
subprocess simply runs inside a GPU pod, so the assets, their Pipes messages, the GPU lease and the
``nproc_per_node`` torchrun launch are the same code on a laptop and on the cluster. ``PipesK8sClient``
would need a second code path in every training asset (an image, a pod spec, a different ``run`` call),
and the step would hold a ``gpu`` pool slot in a CPU pod while a second pod trains.

Every step of the ``gpu`` pool (read from the definitions, not listed here) gets a pod requesting
``nvidia.com/gpu`` (1, or ``FASHION_PIPELINE_K8S_GPUS_<OP_NAME>``); every other step gets a CPU pod.
The image, the data-root volume and the secrets come from the run launcher (the Helm values), so
every pod mounts the same ReadWriteMany volume at the same path.

Refused before launch: a step asking for more GPUs than the ``gpu`` pool allows
(``FASHION_PIPELINE_GPU_POOL_LIMIT``, the number of GPUs the pool is set to): the code location
fails to load, rather than a pod pending forever.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional

DEPLOYMENT_ENV_VAR = "FASHION_PIPELINE_DEPLOYMENT"
DEPLOYMENTS = ("local", "k8s")
GPU_POOL = "gpu"
GPU_POOL_LIMIT_ENV_VAR = "FASHION_PIPELINE_GPU_POOL_LIMIT"
# Per-step GPU count: FASHION_PIPELINE_K8S_GPUS_FASHION_DETECTOR=2 for a 2-process DDP detector pod.
GPU_STEP_ENV_PREFIX = "FASHION_PIPELINE_K8S_GPUS_"


class DeploymentConfigError(ValueError):
    """A deployment setting that cannot work; raised while the code location loads, before any launch."""


def deployment() -> str:
    value = os.environ.get(DEPLOYMENT_ENV_VAR, "local").strip() or "local"
    if value not in DEPLOYMENTS:
        raise DeploymentConfigError(f"{DEPLOYMENT_ENV_VAR}={value!r}: expected one of {', '.join(DEPLOYMENTS)}")
    return value


def _int_env(name: str, default: Optional[int]) -> Optional[int]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise DeploymentConfigError(f"{name}={raw!r} is not a whole number") from None


def gpu_pool_ops(assets: Iterable) -> list[str]:
    """The op names of the assets in the ``gpu`` pool: the steps that get GPU pods."""
    names = []
    for asset in assets:
        node = getattr(asset, "node_def", None)
        if node is not None and getattr(node, "pool", None) == GPU_POOL:
            names.append(node.name)
    return sorted(names)


def gpus_per_step(op_names: Iterable[str]) -> dict[str, int]:
    return {name: _int_env(GPU_STEP_ENV_PREFIX + name.upper(), 1) for name in op_names}


def gpu_step_k8s_config(gpus: int) -> dict:
    """``dagster-k8s/config``-shaped config for one GPU step pod: the request, the limit, the GPU nodes' taint."""
    return {
        "container_config": {"resources": {"requests": {"nvidia.com/gpu": str(gpus)},
                                           "limits": {"nvidia.com/gpu": str(gpus)}}},
        "pod_spec_config": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    }


def check_gpu_requests(gpus: Mapping[str, int], pool_limit: Optional[int]) -> None:
    for step, count in gpus.items():
        if count < 1:
            raise DeploymentConfigError(f"step {step!r} asks for {count} GPUs; a gpu-pool step needs at least 1")
        if pool_limit is not None and count > pool_limit:
            raise DeploymentConfigError(
                f"step {step!r} asks for {count} GPUs (nvidia.com/gpu) but the gpu pool allows {pool_limit} "
                f"({GPU_POOL_LIMIT_ENV_VAR}); its pod could never be scheduled: refused before launch")


def k8s_executor_config(gpus: Mapping[str, int], pool_limit: Optional[int] = None) -> dict:
    """The ``k8s_job_executor`` config: one GPU pod spec per gpu-pool step; refuses a request over the pool limit."""
    pool_limit = _int_env(GPU_POOL_LIMIT_ENV_VAR, None) if pool_limit is None else pool_limit
    check_gpu_requests(gpus, pool_limit)
    return {"per_step_k8s_config": {step: gpu_step_k8s_config(count) for step, count in gpus.items()}}


def executor(gpu_ops: Iterable[str]):
    """The executor for this deployment: ``None`` (Dagster's default) locally, a configured ``k8s_job_executor`` on k8s."""
    if deployment() == "local":
        return None
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(gpus_per_step(gpu_ops)), name="k8s_gpu_steps")
