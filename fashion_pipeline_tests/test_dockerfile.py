"""The Dockerfile's install steps against pyproject.toml (no container runtime here, so no build)."""

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def _pins() -> dict[str, str]:
    pins = {}
    for requirement in PYPROJECT["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        pins[name.strip().lower()] = version.strip()
    return pins


def _index(predicate) -> int:
    for i, (instruction, args) in enumerate(_instructions()):
        if predicate(instruction, args):
            return i
    raise AssertionError("no such Dockerfile instruction")


def _args() -> dict[str, str]:
    return dict(args.split("=", 1) for instruction, args in _instructions() if instruction == "ARG" and "=" in args)


def test_torch_pins_match_pyproject():
    args, pins = _args(), _pins()
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]
    torch_step = next(a for i, a in _instructions() if i == "RUN" and "torch==" in a)
    assert '"torch==${TORCH_VERSION}"' in torch_step and '"torchvision==${TORCHVISION_VERSION}"' in torch_step


def test_same_package_index_as_the_project_install():
    """pyproject.toml and the Makefile install from PyPI's default index (CUDA wheels); so must the image."""
    dockerfile = (REPO / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    index_flags = re.compile(r"--(?:extra-)?index-url[ =](\S+)|PIP_(?:EXTRA_)?INDEX_URL=(\S+)")
    assert sorted(index_flags.findall(dockerfile)) == sorted(index_flags.findall(makefile))


def test_dependency_step_installs_exactly_pyprojects_dependencies(tmp_path):
    """Runs the image's own requirements command on pyproject.toml: what it would install is the dependency list."""
    step = next(a for i, a in _instructions() if i == "RUN" and "tomllib" in a)
    command = shlex.split(step.split(">", 1)[0])
    assert command[:2] == ["python", "-c"]
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    out = subprocess.run([sys.executable, "-c", command[2]], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == PYPROJECT["project"]["dependencies"]
    assert "pip install -r /tmp/requirements.txt" in step


def test_layers_go_from_heavy_dependencies_to_the_package():
    torch = _index(lambda i, a: i == "RUN" and "torch==" in a)
    pyproject = _index(lambda i, a: i == "COPY" and a.split()[0] == "pyproject.toml")
    deps = _index(lambda i, a: i == "RUN" and "requirements.txt" in a)
    source = _index(lambda i, a: i == "COPY" and a.split()[0] == "fashion_pipeline")
    package = _index(lambda i, a: i == "RUN" and "pip install --no-deps ." in a)
    assert torch < pyproject < deps < source < package


def test_debian_chromium_and_chromedriver_as_the_makefile_installs():
    apt = next(a for i, a in _instructions() if i == "RUN" and "apt-get install" in a).split()
    makefile_apt = re.search(r"apt-get install -y -qq (chromium[^;]*);", (REPO / "Makefile").read_text()).group(1).split()
    assert set(makefile_apt) <= set(apt)


def test_code_server_is_the_entry_point_for_the_projects_definitions():
    cmd = next(a for i, a in _instructions() if i == "CMD")
    argv = __import__("json").loads(cmd)
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert argv[argv.index("-m") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    # an ENTRYPOINT would swallow the args dagster-k8s gives run and step pods
    assert not [i for i, _ in _instructions() if i == "ENTRYPOINT"]


@pytest.mark.parametrize("needed", ["pyproject.toml", "fashion_pipeline/"])
def test_dockerignore_keeps_what_the_build_copies(needed):
    lines = (REPO / ".dockerignore").read_text().split()
    assert f"!{needed}" in lines
