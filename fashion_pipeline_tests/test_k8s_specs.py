"""deploy/k8s/values.yaml rendered into run and step Job specs by dagster-k8s's own code (no cluster needed).

The run pod comes from ``K8sRunLauncher.launch_run`` itself (its Kubernetes API mocked); the step pods
from the calls ``k8s_job_executor``'s step handler makes (``K8sContainerContext`` merges, then
``construct_dagster_k8s_job``), with the executor config the definitions build for FASHION_PIPELINE_DEPLOYMENT=k8s.
The Helm chart's own templating (helm is not installed here) is mirrored in ``_launcher_config`` and
``_user_code_container_context``.
"""

import functools
import json
from pathlib import Path
from unittest import mock

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

from fashion_pipeline.common import deployment

REPO = Path(__file__).resolve().parents[1]
VALUES = yaml.safe_load((REPO / "deploy" / "k8s" / "values.yaml").read_text())
RELEASE, NAMESPACE = "dagster", "fashion"
USER_CODE = VALUES["dagster-user-deployments"]["deployments"][0]
IMAGE = f"{USER_CODE['image']['repository']}:{USER_CODE['image']['tag']}"
PG_SECRET = VALUES["global"]["postgresqlSecretName"]
# Present in this process's environment, as the secrets would be in the daemon's: none may reach a spec.
SECRET_VALUES = {"DAGSTER_PG_PASSWORD": "pg-5e1f0c-never-in-a-spec", "PINTEREST_PASSWORD": "pin-93ab7d-never-in-a-spec"}
GPU_ASSETS = ("fashion_detector", "dcgan")
# The Kubernetes version the rendered manifests are validated against (kubernetes-validate's newest schemas).
KUBERNETES_VERSION = "1.37.0"
IMAGE_UID = 1000  # the Dockerfile's `useradd --uid 1000`

# The values the chart's templates read, by block; anything else in these blocks is ignored by the chart.
# From templates/helpers/instance/_run-launcher.tpl ("dagsterYaml.runLauncher.k8s") and the concurrency
# helper ("dagsterYaml.concurrency"), which configmap-instance.yaml renders only when concurrency.enabled.
K8S_RUN_LAUNCHER_KEYS = {"loadInclusterConfig", "kubeconfigFile", "jobNamespace", "imagePullPolicy", "image",
                         "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "resources",
                         "failPodOnRunFailure", "schedulerName", "securityContext", "runK8sConfig"}
RUN_K8S_CONFIG_KEYS = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                       "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
                       "jobMetadata": "job_metadata"}
CONCURRENCY_KEYS = {"enabled", "pools", "runs"}
POOL_KEYS = {"defaultLimit": "default_limit", "granularity": "granularity",
             "opGranularityRunBuffer": "op_granularity_run_buffer"}


def _user_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in USER_CODE["env"]}


def _launcher_config(kubeconfig: Path) -> dict:
    """The K8sRunLauncher block the chart writes into dagster.yaml (templates/helpers/instance/_run-launcher.tpl)."""
    cfg = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    return {
        "load_incluster_config": False, "kubeconfig_file": str(kubeconfig),  # in-cluster there; a stub file here
        "job_namespace": NAMESPACE, "image_pull_policy": cfg["imagePullPolicy"],
        "service_account_name": RELEASE, "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": f"{RELEASE}-instance", "postgres_password_secret": PG_SECRET,
        "env_config_maps": [f"{RELEASE}-pipeline-env"], "env_secrets": [s["name"] for s in cfg["envSecrets"]],
        "env_vars": cfg["envVars"], "volume_mounts": cfg["volumeMounts"], "volumes": cfg["volumes"],
        "resources": cfg["resources"],
        # runK8sConfig's camelCase keys become run_k8s_config's snake_case ones (the template's own mapping)
        "run_k8s_config": {RUN_K8S_CONFIG_KEYS[key]: value for key, value in cfg.get("runK8sConfig", {}).items()},
    }


def _user_code_container_context() -> dict:
    """What the chart gives the code server as DAGSTER_CONTAINER_CONTEXT (includeConfigInLaunchedRuns)."""
    assert USER_CODE["includeConfigInLaunchedRuns"]["enabled"]
    return {"k8s": {"image_pull_policy": USER_CODE["image"]["pullPolicy"],
                    "env_config_maps": [f"{RELEASE}-{USER_CODE['name']}-user-env"],
                    "namespace": NAMESPACE, "service_account_name": f"{RELEASE}-user-deployments",
                    "env": USER_CODE["env"],
                    "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}}}}


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "stub",
        "clusters": [{"name": "stub", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "stub", "user": {"token": "stub-token"}}],
        "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}]}))
    return path


@pytest.fixture
def k8s_env(monkeypatch):
    """The code server's and run pods' environment: the user-code env from the values, and the secrets."""
    for name, value in {**_user_env(), **SECRET_VALUES}.items():
        monkeypatch.setenv(name, value)
    for name in list(__import__("os").environ):
        if name.startswith(deployment.GPU_STEP_ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture
def launcher(kubeconfig, tmp_path, k8s_env):
    processed = process_config(K8sRunLauncher.config_type(), _launcher_config(kubeconfig))
    assert processed.success, processed.errors  # the values are valid K8sRunLauncher config
    batch_api = mock.MagicMock()
    run_launcher = K8sRunLauncher(**processed.value, k8s_client_batch_api=batch_api, k8s_client_core_api=mock.MagicMock())
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        run_launcher.register_instance(instance)
        yield run_launcher, instance, batch_api


def _run(instance) -> DagsterRun:
    origin = JobPythonOrigin("__ASSET_JOB", RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python",
        code_pointer=ModuleCodePointer("fashion_pipeline.definitions", "defs", None),
        container_image=IMAGE, container_context=_user_code_container_context()))
    run = DagsterRun(job_name="__ASSET_JOB", run_id=make_new_run_id(), job_code_origin=origin)
    instance.add_run(run)
    return run


def _step_job(run_launcher, run, op_name: str, executor_config: dict) -> kubernetes.client.V1Job:
    """The step Job k8s_job_executor would create for ``op_name`` (K8sStepHandler.launch_step's own calls)."""
    context = K8sContainerContext.create_for_run(run, run_launcher, include_run_tags=False)
    context = context.merge(K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(executor_config.get("step_k8s_config", {}))))
    per_op = UserDefinedDagsterK8sConfig.from_dict(executor_config["per_step_k8s_config"].get(op_name, {}))
    context = context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config({}))).merge(
        K8sContainerContext(run_k8s_config=per_op))
    job_config = context.get_k8s_job_config(None, run_launcher).with_image(IMAGE)
    return construct_dagster_k8s_job(job_config=job_config, args=["dagster", "api", "execute_step"],
                                     job_name=f"dagster-step-{op_name.replace('_', '-')}", component="step_worker",
                                     user_defined_k8s_config=context.run_k8s_config,
                                     env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": op_name}])


def _executor_config() -> tuple[dict, list[str]]:
    """Build the definitions as the k8s code server does; validate the executor config with dagster-k8s's schema."""
    from fashion_pipeline.definitions import build_defs

    defs = build_defs()
    executor = defs.executor
    assert executor is not None and executor.name == "k8s_gpu_steps"
    # the configured executor's config, checked against k8s_job_executor's own schema, defaults filled in
    resolved = executor.config_schema.resolve_config({"config": {}})
    assert resolved.success, resolved.errors
    return resolved.value["config"], deployment.gpu_pool_ops(defs.assets)


def _as_dict(job) -> dict:
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def _container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _assert_common_pod(job: dict) -> None:
    container, pod = _container(job), job["spec"]["template"]["spec"]
    assert container["image"] == IMAGE
    env = _env(container)
    # the Postgres password by reference only; the Pinterest login from its Secret via envFrom
    assert env["DAGSTER_PG_PASSWORD"] == {"secretKeyRef": {"name": PG_SECRET, "key": "postgresql-password"}}
    assert {"secretRef": {"name": "fashion-pipeline-pinterest"}} in container["envFrom"]
    assert env["FASHION_PIPELINE_DEPLOYMENT"] == "k8s"
    # the data root: the same ReadWriteMany claim, at the path FASHION_PIPELINE_DATA names, in every pod
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["fashion-data"] == env["FASHION_PIPELINE_DATA"] == "/data"
    assert volumes["fashion-data"]["persistentVolumeClaim"]["claimName"] == "fashion-pipeline-data"
    serialized = json.dumps(job)
    for secret in SECRET_VALUES.values():
        assert secret not in serialized


def test_run_pod_from_the_k8s_run_launcher(launcher):
    run_launcher, instance, batch_api = launcher
    run = _run(instance)
    run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    job = _as_dict(batch_api.create_namespaced_job.call_args.kwargs["body"])
    assert batch_api.create_namespaced_job.call_args.kwargs["namespace"] == NAMESPACE
    _assert_common_pod(job)
    container = _container(job)
    # the image's python (the code server's sys.executable there) runs the run worker: args, not an entrypoint
    assert container["args"][:5] == ["/usr/local/bin/python", "-m", "dagster", "api", "execute_run"]
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])  # runs orchestrate; GPU steps get their own pods
    assert container["resources"]["requests"] == VALUES["runLauncher"]["config"]["k8sRunLauncher"]["resources"]["requests"]
    # nor in what the run records
    recorded = instance.get_run_by_id(run.run_id)
    logs = "".join(dg.serialize_value(e) for e in instance.all_logs(run.run_id))
    for secret in SECRET_VALUES.values():
        assert secret not in json.dumps(recorded.tags) + json.dumps(recorded.run_config, default=str) + logs


def test_gpu_steps_get_gpu_pods_and_other_steps_do_not(launcher):
    run_launcher, instance, _ = launcher
    executor_config, gpu_ops = _executor_config()
    assert set(GPU_ASSETS) <= set(gpu_ops)
    run = _run(instance)
    for op_name in [*gpu_ops, "deepfashion_coco", "pinterest_images"]:
        job = _as_dict(_step_job(run_launcher, run, op_name, executor_config))
        _assert_common_pod(job)
        resources = _container(job)["resources"]
        if op_name in gpu_ops:
            assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1", op_name
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
                job["spec"]["template"]["spec"]["tolerations"]
        else:
            assert "nvidia.com/gpu" not in json.dumps(resources), op_name


def test_a_ddp_detector_pod_asks_for_as_many_gpus(launcher, monkeypatch):
    run_launcher, instance, _ = launcher
    monkeypatch.setenv(deployment.GPU_STEP_ENV_PREFIX + "FASHION_DETECTOR", "2")
    executor_config, _ = _executor_config()
    job = _as_dict(_step_job(run_launcher, _run(instance), "fashion_detector", executor_config))
    assert _container(job)["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_a_step_asking_for_more_gpus_than_the_pool_is_refused_before_launch(k8s_env, monkeypatch):
    from fashion_pipeline.definitions import build_defs

    pool = int(_user_env()[deployment.GPU_POOL_LIMIT_ENV_VAR])
    monkeypatch.setenv(deployment.GPU_STEP_ENV_PREFIX + "DCGAN", str(pool + 1))
    with pytest.raises(deployment.DeploymentConfigError, match=f"'dcgan' asks for {pool + 1} GPUs .* gpu pool allows {pool}"):
        build_defs()  # the code location fails to load: no run, no pod


def test_local_is_the_default_executor_and_only_configuration_differs(monkeypatch):
    from fashion_pipeline.definitions import build_defs

    monkeypatch.setenv(deployment.DEPLOYMENT_ENV_VAR, "local")
    local = build_defs()
    assert local.executor is None
    monkeypatch.setenv(deployment.DEPLOYMENT_ENV_VAR, "k8s")
    on_k8s = build_defs()
    assert on_k8s.executor.name == "k8s_gpu_steps"
    assert {k.to_user_string() for a in local.assets for k in a.keys} == \
        {k.to_user_string() for a in on_k8s.assets for k in a.keys}
    monkeypatch.setenv(deployment.DEPLOYMENT_ENV_VAR, "swarm")
    with pytest.raises(deployment.DeploymentConfigError, match="FASHION_PIPELINE_DEPLOYMENT='swarm'"):
        build_defs()


def _literal_secrets(node, path=""):
    """Keys that look like credentials and carry a literal value in the values file."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}"
            literal = isinstance(value, (str, int)) and not isinstance(value, bool) and value != ""
            if literal and any(word in key.lower() for word in ("password", "token", "secretkey")):
                yield sub
            yield from _literal_secrets(value, sub)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _literal_secrets(item, f"{path}[{i}]")


def test_values_hold_no_credential():
    assert list(_literal_secrets(VALUES)) == []
    assert VALUES["generatePostgresqlPasswordSecret"] is False
    for env in VALUES["runLauncher"]["config"]["k8sRunLauncher"]["envVars"] + [e["name"] for e in USER_CODE["env"]]:
        assert not any(w in env.upper() for w in ("PASSWORD", "TOKEN", "SECRET")), env


def chart_ignored_values(values: dict) -> list[str]:
    """Values the chart's templates would silently drop: unknown keys, or a concurrency block left disabled."""
    problems = []
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    problems += [f"runLauncher.config.k8sRunLauncher.{k}" for k in sorted(set(launcher) - K8S_RUN_LAUNCHER_KEYS)]
    run_config = launcher.get("runK8sConfig", {})
    problems += [f"runLauncher.config.k8sRunLauncher.runK8sConfig.{k}" for k in sorted(set(run_config) - set(RUN_K8S_CONFIG_KEYS))]
    concurrency = values.get("concurrency", {})
    problems += [f"concurrency.{k}" for k in sorted(set(concurrency) - CONCURRENCY_KEYS)]
    problems += [f"concurrency.pools.{k}" for k in sorted(set(concurrency.get("pools", {})) - set(POOL_KEYS))]
    if concurrency and concurrency.get("enabled") is not True:
        problems.append("concurrency (not rendered into dagster.yaml unless concurrency.enabled: true)")
    return problems


def rendered_concurrency(values: dict) -> dict | None:
    """The dagster.yaml ``concurrency`` block the chart writes (None when it writes none)."""
    concurrency = values.get("concurrency", {})
    if not concurrency.get("enabled"):
        return None
    pools = {POOL_KEYS[k]: v for k, v in concurrency.get("pools", {}).items() if k in POOL_KEYS and v is not None}
    return {"pools": pools} if pools else {}


def test_the_chart_renders_every_value_we_set():
    assert chart_ignored_values(VALUES) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda v: v["concurrency"].pop("enabled"), "concurrency (not rendered"),
    (lambda v: v["concurrency"]["pools"].update(limit=4), "concurrency.pools.limit"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(podSecurityContext={"fsGroup": 1000}),
     "k8sRunLauncher.podSecurityContext"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"].update(pod_spec_config={}),
     "runK8sConfig.pod_spec_config"),
])
def test_a_value_the_chart_ignores_fails(mutate, expected):
    values = json.loads(json.dumps(VALUES))
    mutate(values)
    problems = chart_ignored_values(values)
    assert any(expected in problem for problem in problems), problems


def test_the_rendered_pool_limits_reach_the_instance(tmp_path):
    block = rendered_concurrency(VALUES)
    assert block is not None, "the chart writes no concurrency block: every pool unlimited"
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"concurrency": block, "telemetry": {"enabled": False}}))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # Dagster's own instance config schema
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1  # the pinterest pool: one Chromium pod at a time
        assert pools.pool_granularity.value == "op"


def _security_context(job: dict) -> dict:
    return job["spec"]["template"]["spec"].get("securityContext") or {}


def test_run_and_step_pods_can_write_the_data_volume(launcher):
    run_launcher, instance, batch_api = launcher
    run = _run(instance)
    run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    run_job = _as_dict(batch_api.create_namespaced_job.call_args.kwargs["body"])
    executor_config, gpu_ops = _executor_config()
    step_jobs = [_as_dict(_step_job(run_launcher, run, op, executor_config)) for op in [*gpu_ops, "pinterest_images"]]
    for job in [run_job, *step_jobs]:
        context = _security_context(job)
        # the image's uid, and a pod fsGroup so the kubelet gives the mounted volume to its group
        assert context["runAsUser"] == context["fsGroup"] == IMAGE_UID, job["metadata"]["name"]
        assert context["runAsNonRoot"] is True


def test_every_rendered_manifest_is_valid_kubernetes(launcher):
    import kubernetes_validate

    run_launcher, instance, batch_api = launcher
    run = _run(instance)
    run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    manifests = {"run pod": _as_dict(batch_api.create_namespaced_job.call_args.kwargs["body"])}
    executor_config, gpu_ops = _executor_config()
    for op in [*gpu_ops, "deepfashion_coco", "pinterest_images"]:
        manifests[f"step pod {op}"] = _as_dict(_step_job(run_launcher, run, op, executor_config))
    manifests["data volume"] = yaml.safe_load((REPO / "deploy" / "k8s" / "data-volume.yaml").read_text())
    for name, manifest in manifests.items():
        manifest.setdefault("apiVersion", "batch/v1")
        manifest.setdefault("kind", "Job")
        try:  # strict: a field Kubernetes does not know is an error, not ignored
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{name}: {error.path}: {error.message}") from None


def test_the_validator_rejects_a_broken_manifest():
    import kubernetes_validate

    volume = yaml.safe_load((REPO / "deploy" / "k8s" / "data-volume.yaml").read_text())
    volume["spec"]["accessMode"] = ["ReadWriteMany"]  # a typo of accessModes
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(volume, KUBERNETES_VERSION, strict=True)


# The chart's own values.schema.json (deploy/k8s/PROVENANCE.md: which commit, and how it differs from 1.13.27).
CHART_SCHEMA = json.loads((REPO / "deploy" / "k8s" / "values.schema.json").read_text())
# Its Kubernetes types are $refs to this remote file; here they resolve to kubernetes-validate's bundled
# (non-strict, like the original) definitions for KUBERNETES_VERSION, since nothing remote can be fetched.
K8S_DEFINITIONS_URI = "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v1.19.0/_definitions.json"


def _without_required(node):
    """Helm validates the chart's defaults merged with ours, and those defaults fill every `required` key;
    we hold only our overrides, so `required` is dropped. Types, enums and unknown keys
    (additionalProperties: false) are still enforced."""
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


@functools.cache  # the 1.37 definitions are 862 types: load them once
def _chart_schema_validator():
    import jsonschema
    import kubernetes_validate
    import referencing
    from referencing.jsonschema import DRAFT202012

    bundled = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local"
    definitions = json.loads((bundled / "_definitions.json").read_text())["$defs"]
    # The chart points at "#/definitions/...", the bundled file keeps them under "$defs": serve both.
    k8s = referencing.Resource.from_contents({"$defs": definitions, "definitions": definitions}, DRAFT202012)
    registry = referencing.Registry().with_resource(K8S_DEFINITIONS_URI, k8s)
    # No $schema in the file; its "$defs" are pydantic v2's, i.e. draft 2020-12.
    return jsonschema.Draft202012Validator(_without_required(CHART_SCHEMA), registry=registry)


def _leaves(error):
    """An anyOf (pydantic's "X or null") reports at the parent; its sub-errors name the key at fault."""
    return [leaf for sub in error.context for leaf in _leaves(sub)] if error.context else [error]


def chart_schema_errors(values: dict) -> list[str]:
    return [f"{'.'.join(map(str, leaf.absolute_path)) or '<root>'}: {leaf.message}"
            for error in _chart_schema_validator().iter_errors(values) for leaf in _leaves(error)]


def test_values_pass_the_charts_own_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(CHART_SCHEMA)
    assert chart_schema_errors(VALUES) == []


@pytest.mark.parametrize("mutate, expected", [
    # unknown keys where the chart's models forbid extras
    (lambda v: v["concurrency"]["pools"].update(limit=4), "concurrency.pools"),
    (lambda v: v["concurrency"].update(pool={"defaultLimit": 1}), "concurrency"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(podSecurityContext={"fsGroup": 1000}),
     "runLauncher.config.k8sRunLauncher"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"].update(pod_spec_config={}),
     "runLauncher.config.k8sRunLauncher.runK8sConfig"),
    (lambda v: v["dagsterDaemon"]["runCoordinator"].update(maxConcurrentRuns=4), "dagsterDaemon.runCoordinator"),
    (lambda v: v["telemetry"].update(level="off"), "telemetry"),
    # wrong types and values
    (lambda v: v["concurrency"].update(enabled="true"), "concurrency.enabled"),
    (lambda v: v["concurrency"]["pools"].update(defaultLimit="1"), "concurrency.pools.defaultLimit"),
    (lambda v: v["runLauncher"].update(type="KubernetesRunLauncher"), "runLauncher.type"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(imagePullPolicy="Sometimes"),
     "runLauncher.config.k8sRunLauncher.imagePullPolicy"),
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(envVars=[{"name": "A", "value": "1"}]),
     "runLauncher.config.k8sRunLauncher.envVars.0"),
    # a Kubernetes type, resolved through the $ref to the API definitions
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"]["volumeMounts"][0].update(mountPath=7),
     "runLauncher.config.k8sRunLauncher.volumeMounts.0.mountPath"),
    (lambda v: v["dagster-user-deployments"]["deployments"][0].update(replicaCount=0),
     "dagster-user-deployments.deployments.0.replicaCount"),
])
def test_a_value_the_charts_schema_rejects_fails(mutate, expected):
    values = json.loads(json.dumps(VALUES))
    mutate(values)
    errors = chart_schema_errors(values)
    assert any(error.startswith(expected + ":") for error in errors), errors


def test_the_template_key_lists_match_the_charts_schema():
    """The keys _launcher_config / chart_ignored_values mirror from the templates are the schema's keys."""
    defs = CHART_SCHEMA["$defs"]
    assert set(defs["K8sRunLauncherConfig"]["properties"]) == K8S_RUN_LAUNCHER_KEYS
    assert set(defs["RunK8sConfig"]["properties"]) == set(RUN_K8S_CONFIG_KEYS)
    assert set(defs["Concurrency"]["properties"]) == CONCURRENCY_KEYS
    assert set(defs["ConcurrencyPools"]["properties"]) == set(POOL_KEYS)
    # The schema accepts a concurrency block without enabled (it defaults to false, and the chart then
    # renders nothing): only chart_ignored_values catches that, which is why both checks exist.
    assert defs["Concurrency"]["properties"]["enabled"]["default"] is False
