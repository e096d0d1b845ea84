"""The layering the design promises, enforced: `kv` is sans-I/O and imports no backend;
backends import only the contract; nothing imports `sim_runner`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_KV = {"os", "time", "random", "threading", "io_backends", "subprocess", "socket", "pathlib", "shutil"}
ALLOWED_KV_MODULES_FOR_BACKENDS = {"kv.io", "kv.errors"}
# The network loop of `kv serve` lives with the other I/O, but it drives a store: it may
# also use the library's entry point, its limits, the sans-I/O session it feeds, its ACL
# parser, the group commit that decides when its replies leave, and the replies' type.
# The redis:// client implements `kv.client`'s contract, so it may use that contract's
# argument checks (one copy for every backend).
ALLOWED_FOR_THE_REDIS_CLIENT = ALLOWED_KV_MODULES_FOR_BACKENDS | {"kv.client"}
ALLOWED_KV_MODULES_FOR_THE_SERVER = ALLOWED_KV_MODULES_FOR_BACKENDS | {
    "kv",
    "kv.acl",
    "kv.limits",
    "kv.session",
    "kv.group_commit",
    "kv.replies",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def _python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _python_files("kv"), ids=lambda path: str(path.relative_to(ROOT)))
def test_kv_imports_no_io_clock_randomness_or_backend(path: Path) -> None:
    bad = {name for name in _imports(path) if name.split(".")[0] in FORBIDDEN_IN_KV}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _python_files("io_backends"), ids=lambda path: str(path.relative_to(ROOT)))
def test_backends_import_only_the_contract_from_kv(path: Path) -> None:
    kv_modules = {name for name in _imports(path) if name.split(".")[0] == "kv"}
    allowed = {"server.py": ALLOWED_KV_MODULES_FOR_THE_SERVER, "redis_client.py": ALLOWED_FOR_THE_REDIS_CLIENT}.get(
        path.name, ALLOWED_KV_MODULES_FOR_BACKENDS
    )
    assert kv_modules <= allowed, f"{path.relative_to(ROOT)} imports {sorted(kv_modules)}"


@pytest.mark.parametrize(
    "path",
    _python_files("kv", "io_backends", "scenarios", "tests", "benchmarks"),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_nothing_imports_sim_runner(path: Path) -> None:
    assert "sim_runner" not in _imports(path)


def test_importing_kv_loads_no_backend() -> None:
    code = (
        "import sys; import kv, kv.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('io_backends', 'liburing')))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert output.stdout.strip() == "[]"
