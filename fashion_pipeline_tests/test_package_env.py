"""The package sets OpenMP's wait policy before torch loads, unless the user chose one."""
import os
import subprocess
import sys


def _policy_after_import(env: dict) -> str:
    code = "import fashion_pipeline, os; print(os.environ['OMP_WAIT_POLICY'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_import_makes_idle_openmp_threads_sleep():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_after_import(env) == "PASSIVE"


def test_a_policy_the_user_set_is_kept():
    assert _policy_after_import({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
