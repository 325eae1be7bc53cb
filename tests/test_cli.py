"""The ``ultralytics-convmixer`` console script: help, cheap import, one-line errors, the datasets subcommand."""

import shutil

from ultralytics_convmixer.cli import main

from conftest import cli_command, run, run_python


# ----------------------------------------------------------------------------------------------------------------------
# The console script and the datasets subcommand
# ----------------------------------------------------------------------------------------------------------------------
def test_console_script_help():
    script = shutil.which("ultralytics-convmixer")
    if script:  # the installed console script
        r = run([script, "--help"])
        assert r.returncode == 0 and "compare" in r.stdout and "datasets" in r.stdout
    r = run(cli_command("compare", "--help"))
    assert r.returncode == 0 and "--no-train" in r.stdout and "--latency-runs" in r.stdout
    r = run(cli_command("compare", "nope.yaml"))
    assert r.returncode == 2 and "unknown model 'nope.yaml'" in r.stderr and "Traceback" not in r.stderr


def test_cli_import_is_cheap(tmp_path):
    code = "import sys, ultralytics_convmixer.cli; print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    r = run_python(code, check=True)
    assert r.stdout.split() == ["False", "False"]
    # Nor does building the parser (--help, every argparse error) or reporting a user error found before the work.
    missing = str(tmp_path / "missing" / "m.yaml")
    code = (
        "import sys; from ultralytics_convmixer import cli; cli._parser(); assert 'torch' not in sys.modules\n"
        f"code = cli.main(['import-timm', 'm.pth', '--out', 'm.pt', '--yaml', {missing!r}])\n"
        "assert code == 2 and 'torch' not in sys.modules, code"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"--yaml {missing}: folder {tmp_path / 'missing'} does not exist" in r.stderr


def test_datasets_subcommand(tmp_path, capsys):
    argv = ["datasets", "detect", "classify", "semantic", "depth", "--root", str(tmp_path), "--n-train", "3"]
    assert main([*argv, "--n-val", "2", "--imgsz", "64", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"shapes-detect: {tmp_path / 'shapes-detect'}" in out and f"shapes-depth: {tmp_path / 'shapes-depth'}" in out
    assert len(list((tmp_path / "shapes-detect" / "images" / "train").iterdir())) == 3
    assert len(list((tmp_path / "shapes-detect" / "labels" / "val").iterdir())) == 2
    assert sum(1 for _ in (tmp_path / "shapes-classify" / "val").rglob("*.jpg")) == 2
    assert [len(list(tmp_path.glob(f"shapes-{t}/*/val/*.png"))) for t in ("semantic", "depth")] == [2, 2]  # masks, maps
