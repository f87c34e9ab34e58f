"""The same Definitions load under the Kubernetes and Celery executors.

Running them needs a cluster or a broker, which these machines lack: the tests prove the
job is built for those executors, validates its run config, and plans one step per
shard with no edge between shards, which is what lets either executor train them at once.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan
from dagster_celery import celery_executor
from dagster_k8s import k8s_job_executor

from pipelines.defs.definitions import make_definitions
from pipelines.settings import quick_profile

SHARDS = 3
K8S = k8s_job_executor.configured({
    "job_namespace": "consentgen",
    "job_image": "registry.example/consentgen:0.1.0",
    "load_incluster_config": False,
    "max_concurrent": SHARDS,
    # each shard step gets a GPU node; other steps run on CPU
    "per_step_k8s_config": {f"shard_models__shard_{s}": {"container_config": {
        "resources": {"limits": {"nvidia.com/gpu": "1"}}}} for s in range(SHARDS)},
}, name="k8s")
CELERY = celery_executor.configured({"broker": "pyamqp://guest@localhost//", "backend": "rpc://"},
                                    name="celery")


@pytest.mark.parametrize("executor", [K8S, CELERY], ids=["k8s", "celery"])
def test_build_job_runs_on_the_executor_with_one_step_per_shard(executor: dg.ExecutorDefinition,
                                                               tmp_path: Path) -> None:
    defs = make_definitions(quick_profile(shards=SHARDS), tmp_path, executor=executor)
    job = defs.resolve_job_def("build")
    assert job.executor_def.name == executor.name
    assert dg.validate_run_config(job, {}) is not None
    plan = create_execution_plan(job)
    shard_steps = {f"shard_models__shard_{s}" for s in range(SHARDS)}
    assert shard_steps <= set(plan.step_keys_to_execute)
    deps = plan.get_executable_step_deps()
    for step in shard_steps:
        assert deps[step] == {"eligible_records"}  # no shard waits for another
    assert shard_steps <= deps["candidates"]
