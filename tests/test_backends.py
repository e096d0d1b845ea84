"""Choosing a backend: `make_io` names, the io_uring probe and the fallback, and the
entry point through which `kv` finds a backend without importing one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kv
from io_backends import BackendUnavailable, make_io
from io_backends.uring import probe
from tests.conftest import uring_unavailable_reason

ROOT = Path(__file__).resolve().parent.parent


def test_named_backends() -> None:
    assert make_io("blocking").name == "blocking"
    assert make_io("sim", seed=3).name == "sim"
    with pytest.raises(ValueError, match="unknown io backend 'floppy'"):
        make_io("floppy")


@pytest.mark.skipif(
    uring_unavailable_reason() is not None, reason=f"io_uring unavailable: {uring_unavailable_reason()}"
)
def test_auto_picks_uring_where_the_probe_passes() -> None:
    assert probe().available
    io = make_io("auto")
    assert io.name == "uring"
    io.shutdown()


def _python(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **environment}
    )


def test_disabled_io_uring_falls_back_with_one_warning_and_forcing_it_is_a_clear_error() -> None:
    code = (
        "from io_backends import make_io, BackendUnavailable\n"
        "print(make_io('auto').name)\n"
        "try:\n    make_io('uring')\nexcept BackendUnavailable as error:\n    print('refused:', error)\n"
    )
    result = _python(code, KV_IO_URING_DISABLE="1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "blocking"
    assert lines[1].startswith("refused: io_uring is unavailable here:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "using the blocking backend" in result.stderr


def test_backend_unavailable_is_a_kv_error() -> None:
    assert issubclass(BackendUnavailable, kv.KvError)


def test_kv_open_without_io_finds_a_backend_through_the_entry_point(tmp_path: Path) -> None:
    with kv.open(str(tmp_path / "data")) as store:
        store.set(b"k", b"v")
        assert store.io.name in ("uring", "blocking")
    with kv.open(str(tmp_path / "data"), io=make_io("blocking")) as store:
        assert store.get(b"k") == b"v"
