"""Running the test suite never rewrites the user's Ultralytics settings and leaves no scratch folder behind."""

import subprocess
from pathlib import Path

import pytest

from conftest import run_python

# Also on 8.3, whose settings folder follows other rules (/tmp/Ultralytics when YOLO_CONFIG_DIR does not exist).
pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[1]
FAST_TEST = str(ROOT / "tests" / "test_shapes.py") + "::test_flip_idx_is_involution"


def _user_settings(tmp_path: Path) -> tuple[Path, Path]:
    """Make the config folder and settings file of a user whose datasets live elsewhere; return both."""
    config = tmp_path / "user-config"
    config.mkdir()  # Ultralytics 8.3 falls back to /tmp/Ultralytics when YOLO_CONFIG_DIR does not exist
    code = f"from ultralytics import settings; settings.update(datasets_dir={str(tmp_path / 'my-datasets')!r}); "
    code += "print(settings.file)"
    proc = run_python(code, env={"YOLO_CONFIG_DIR": str(config)}, timeout=300, check=True)
    settings_file = Path(proc.stdout.strip().splitlines()[-1])
    assert config in settings_file.parents and "my-datasets" in settings_file.read_text(encoding="utf-8")
    return config, settings_file


def _run_pytest_as_user(config: Path, scratch_parent: Path, first: str = "") -> subprocess.CompletedProcess:
    """Run one fast test through ``pytest.main`` with the user's ``config``, after the statements ``first``.

    Temporary folders (the suite's scratch folder among them) are made under ``scratch_parent``.
    """
    scratch_parent.mkdir()
    code = f"{first}import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {FAST_TEST!r}]))"
    env = {"YOLO_CONFIG_DIR": str(config), "TMPDIR": str(scratch_parent)}
    return run_python(code, env=env, timeout=300, cwd=ROOT)


def test_the_suite_uses_scratch_settings_and_removes_them_when_it_ends(tmp_path):
    config, settings_file = _user_settings(tmp_path)
    before = settings_file.read_bytes()
    proc = _run_pytest_as_user(config, tmp_path / "tmpdir")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
    assert settings_file.read_bytes() == before
    assert not list((tmp_path / "tmpdir").glob("convmixer-tests-*")), "the session's scratch folder was left behind"


def test_the_suite_refuses_to_run_after_ultralytics_was_imported_with_the_users_settings(tmp_path):
    config, settings_file = _user_settings(tmp_path)
    before = settings_file.read_bytes()
    proc = _run_pytest_as_user(config, tmp_path / "tmpdir", first="import ultralytics; ")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Ultralytics was imported before tests/conftest.py could give it scratch settings" in output, output[-3000:]
    assert str(settings_file) in output  # names the file it protected
    assert settings_file.read_bytes() == before
    assert not list((tmp_path / "tmpdir").glob("convmixer-tests-*"))
