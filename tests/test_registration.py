"""Registration: plugin rows behave like native rows, YAML names resolve like stock ones, start-up stays cheap."""

import sys
import types
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.ops import make_divisible

from ultralytics_convmixer.integration import planner, registration, resources
from ultralytics_convmixer.nn.modules import ConvMixerBlock, ConvMixerStage, PatchEmbed

from conftest import run, run_python

SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768), "l": (1.0, 1.0, 512),
          "x": (1.0, 1.25, 512)}  # fmt: skip

ROW_BY_ROW_YAML = """
nc: 4
scales:
  n: [0.33, 0.25, 1024]
  s: [0.33, 0.50, 1024]
  l: [1.00, 1.00, 512]
backbone:
  - [-1, 1, PatchEmbed, [64, 2]] # 0-P1/2, a plugin row first
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4, native row between plugin rows
  - [-1, 3, ConvMixerStage, [128, 7]] # 2
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 6, ConvMixerStage, [256, 7]] # 4
  - [-1, 1, Conv, [512, 3, 2]] # 5-P4/16
  - [-1, 6, ConvMixerStage, [512, 5]] # 6
  - [-1, 1, Conv, [1024, 3, 2]] # 7-P5/32
  - [-1, 3, ConvMixerStage, [1024, 3, silu]] # 8
  - [-1, 1, SPPF, [1024, 5]] # 9
head:
  - [6, 2, ConvMixerBlock, [5]] # 10: absolute 'from' pointing back at layer 6
  - [9, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 10], 1, Concat, [1]]
  - [-1, 3, ConvMixerStage, [512, 7]] # 13: input channels from a Concat
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 3, C2f, [256]] # 16 (P3/8)
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 13], 1, Concat, [1]]
  - [-1, 3, C2f, [512]] # 19 (P4/16)
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 9], 1, Concat, [1]]
  - [-1, 3, C2f, [1024]] # 22 (P5/32)
  - [[16, 19, 22], 1, Detect, [nc]]
"""


@pytest.mark.parametrize("scale", ["n", "s", "l"])
def test_plugin_rows_get_graph_input_channels_and_scaled_outputs_like_native_rows(tmp_path, scale):
    path = tmp_path / f"yolov8{scale}-rowbyrow.yaml"
    path.write_text(ROW_BY_ROW_YAML)
    model = DetectionModel(str(path), verbose=False)
    depth, width, max_channels = SCALES[scale]
    c = lambda x: make_divisible(min(x, max_channels) * width, 8)  # noqa: E731
    n = lambda x: max(round(x * depth), 1) if x > 1 else x  # noqa: E731
    layers = model.model
    assert isinstance(layers[0], PatchEmbed) and layers[0].conv.in_channels == 3 and layers[0].c2 == c(64)
    for i, c2, reps in [(2, 128, 3), (4, 256, 6), (6, 512, 6), (8, 1024, 3)]:
        assert isinstance(layers[i], ConvMixerStage)
        assert layers[i].c2 == c(c2) and len(layers[i].blocks) == n(reps)
        assert isinstance(layers[i].transition, torch.nn.Identity)  # the Conv before it already made c(c2) channels
    assert layers[6].blocks[0].dw.conv.kernel_size == (5, 5) and isinstance(layers[8].blocks[0].dw.act, torch.nn.SiLU)
    block = layers[10]  # n=2 scaled by depth; one block is a module, several a Sequential
    blocks = list(block) if isinstance(block, torch.nn.Sequential) else [block]
    assert len(blocks) == n(2) and all(isinstance(b, ConvMixerBlock) and b.c2 == c(512) for b in blocks)
    assert layers[13].transition.conv.in_channels == c(1024) + c(512)  # Concat of SPPF (upsampled) and layer 10
    assert (layers[10].f, layers[10].i, layers[13].f) == (6, 10, -1)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert model.eval()(torch.zeros(1, 3, 64, 64))[0].shape[2] == 64 + 16 + 4


@pytest.mark.parametrize("scale", resources.SCALES)
def test_index_rows_get_the_backbone_channels_at_every_scale(scale):
    model = DetectionModel(f"yolov8{scale}-convmixer.yaml", verbose=False).eval()
    spec = model.model[0].output_shape()
    features = model.model[0](torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == [spec["P3"].channels, spec["P4"].channels, spec["P5"].channels]
    _, width, max_channels = SCALES[scale]
    yaml_channels = tasks.yaml_model_load("yolov8-convmixer.yaml")["backbone"][0][3][0]  # unscaled, e.g. [512, ...]
    expected = [make_divisible(min(c, max_channels) * width, 8) for c in yaml_channels]
    assert [spec[k].channels for k in ("P3", "P4", "P5")] == expected
    assert [model.model[i].index for i in (1, 2, 3)] == [0, 1, 2]


def test_packaged_models_use_the_shortcut_block_and_a_yaml_row_can_ask_for_the_papers(tmp_path):
    packaged = DetectionModel("yolov8n-convmixer.yaml", verbose=False)
    blocks = [m for m in packaged.modules() if isinstance(m, ConvMixerBlock)]
    assert len(blocks) == 10 and all(b.shortcut and isinstance(b.dw.act, torch.nn.SiLU) for b in blocks)
    assert all(b.dw.order == b.pw.order == "conv-bn-act" and b.dw.conv.kernel_size == (3, 3) for b in blocks)

    text = resources.model_yaml("yolov8-convmixer.yaml").read_text(encoding="utf-8")
    path = tmp_path / "yolov8n-paper.yaml"
    paper_row = "9, hierarchical, gelu, false, conv-act-bn]"
    path.write_text(text.replace("3, hierarchical, silu, true, conv-bn-act]", paper_row), encoding="utf-8")
    paper = [m for m in DetectionModel(str(path), verbose=False).modules() if isinstance(m, ConvMixerBlock)]
    assert len(paper) == 10 and not any(b.shortcut for b in paper)
    assert all(b.dw.conv.kernel_size == (9, 9) and isinstance(b.dw.act, torch.nn.GELU) for b in paper)
    assert all(b.dw.order == b.pw.order == "conv-act-bn" for b in paper)


def test_scale_letter_in_the_name_picks_the_scale_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for scale in "nsmlx":
        d = tasks.yaml_model_load(f"yolov8{scale}-convmixer-seg.yaml")
        assert d["scale"] == scale and d["head"][-1][2] == "Segment"
    assert YOLO("yolov8s-convmixer-pose.yaml").model.yaml["scale"] == "s"


def test_a_local_file_of_that_name_wins_over_the_packaged_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = resources.model_yaml("yolov8-convmixer.yaml").read_text()
    Path("yolov8n-convmixer.yaml").write_text(packaged.replace("nc: 80", "nc: 3"))
    assert YOLO("yolov8n-convmixer.yaml").model.yaml["nc"] == 3
    Path("yolov8-convmixer.yaml").write_text(packaged.replace("nc: 80", "nc: 5"))  # unified name, as stock
    d = tasks.yaml_model_load("yolov8s-convmixer.yaml")
    assert (d["nc"], d["scale"]) == (5, "s")


def test_unknown_name_still_raises_ultralytics_file_not_found():
    with pytest.raises(FileNotFoundError):
        tasks.yaml_model_load("yolov8n-convmixer-nope.yaml")


def test_a_path_to_a_missing_file_is_not_swapped_for_the_packaged_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):  # as stock does for no_such_dir/yolov8s.yaml
        tasks.yaml_model_load("no_such_dir/yolov8s-convmixer.yaml")
    assert registration._packaged_data("typo_dir/shapes-detect.yaml") == "typo_dir/shapes-detect.yaml"
    assert registration._packaged_data(str(tmp_path / "shapes-detect.yaml")) == str(tmp_path / "shapes-detect.yaml")
    assert registration._packaged_data("shapes-detect.yaml") == resources.dataset_yaml("shapes-detect.yaml")


def test_register_is_idempotent_and_keeps_one_wrapper():
    parse_model, load = tasks.parse_model, tasks.yaml_model_load
    registration.register()
    registration.register()
    assert tasks.parse_model is parse_model and tasks.yaml_model_load is load
    assert tasks.parse_model.__wrapped__.__module__ == "ultralytics.nn.tasks"  # wraps the original exactly once
    assert tasks.ConvMixerBackbone is registration.PLUGIN_MODULES["ConvMixerBackbone"]


def test_registering_from_a_fresh_interpreter_wraps_each_internal_once():
    # register() imports ultralytics.nn.tasks, which runs the start-up hook's registration inside this one; that
    # must not wrap parse_model a second time.
    code = (
        "import ultralytics_convmixer as u; u.register()\n"
        "import ultralytics.nn.tasks as t\n"
        "print(*(getattr(f.__wrapped__, '_convmixer', False) for f in (t.parse_model, t.yaml_model_load)))"
    )
    result = run_python(code)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_registering_while_another_thread_imports_ultralytics_does_not_deadlock():
    # Thread B imports ultralytics.nn.tasks; its start-up hook registers while B still holds Python's lock on that
    # module (held up here, so the timing is certain). Thread A calls register() meanwhile, which imports the same
    # module: A must not hold the plugin's lock while it waits for B.
    code = """
import os, sys, threading, time
import ultralytics_convmixer.integration.registration as registration
register, hook_running = registration.register, threading.Event()
def held_up_register():  # what the hook calls in B
    hook_running.set()
    time.sleep(1)
    register()
registration.register = held_up_register
importer = threading.Thread(target=lambda: __import__("ultralytics.nn.tasks"), daemon=True)
importer.start()
hook_running.wait(120)
registration.register = register
registrar = threading.Thread(target=register, daemon=True)
registrar.start()
importer.join(60), registrar.join(60)
tasks = sys.modules.get("ultralytics.nn.tasks")  # not `import`: that would wait for B too
print("deadlocked" if importer.is_alive() or registrar.is_alive() else "done", hasattr(tasks, "ConvMixerBackbone"))
sys.stdout.flush()
os._exit(0)  # deadlocked threads hold locks the interpreter's shutdown would wait for
"""
    result = run_python(code)
    assert result.stdout.split() == ["done", "True"], result.stderr[-2000:]


def test_the_layer_table_of_another_thread_is_left_alone():
    import logging
    import threading

    line = f"{0:>3}{-1!s:>20}  1       464  ultralytics.nn.modules.conv.Conv"  # a layer-0 line of parse_model
    rewriter = registration._TableRewriter({line[:23]: "the plugin's line"})
    records = []

    def log_a_line():  # a LogRecord takes the ident of the thread that creates it, as logging does
        records.append(logging.LogRecord("ultralytics", logging.INFO, __file__, 1, line, (), None))
        rewriter.filter(records[-1])

    log_a_line()
    thread = threading.Thread(target=log_a_line)  # another model built at the same time, in another thread
    thread.start()
    thread.join()
    assert [r.msg for r in records] == ["the plugin's line", line]


def test_modules_that_imported_internals_by_name_see_the_wrappers():
    import ultralytics.engine.model
    import ultralytics.engine.trainer

    assert ultralytics.engine.model.yaml_model_load is tasks.yaml_model_load
    assert ultralytics.engine.trainer.check_det_dataset._convmixer


@pytest.mark.smoke
def test_the_planner_knows_every_module_parse_model_scales_by_width():
    # parse_model's base_modules is a local set: read it from the source, so a release that adds a module fails here
    # (a plugin row reading such a layer would otherwise get its unscaled channels).
    import inspect
    import re

    source = inspect.getsource(tasks.parse_model.__wrapped__)
    block = re.search(r"base_modules = frozenset\(\s*\{(.*?)\}", source, re.S)
    assert block, "parse_model no longer has a base_modules set: see planner.SCALED_NATIVE"
    names = {re.sub(r"^torch\.nn\.", "nn.", n.strip()) for n in block.group(1).split(",") if n.strip()}
    assert {"Conv", "C2f", "SPPF", "Classify"} <= names  # the set was read
    assert names <= set(planner.SCALED_NATIVE), f"not in SCALED_NATIVE: {sorted(names - set(planner.SCALED_NATIVE))}"


def _modules_parse_model_names(source: str) -> set:
    """Every module name in parse_model's frozensets and in its ``m is X`` / ``m in {X, Y}`` branches."""
    import ast
    import textwrap

    found = set()
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "frozenset":
            found |= {ast.unparse(e) for arg in node.args for e in getattr(arg, "elts", [])}
        elif isinstance(node, ast.Compare) and getattr(node.left, "id", None) == "m":
            for c in node.comparators:
                elements = c.elts if isinstance(c, (ast.Set, ast.Tuple, ast.List)) else [c]
                found |= {ast.unparse(e) for e in elements if isinstance(e, (ast.Name, ast.Attribute))}
    names = {n.removeprefix("torch.") for n in found} - {"base_modules", "repeat_modules"}
    return {n for n in names if not n.startswith("{")}


@pytest.mark.smoke
def test_the_planner_knows_every_module_parse_model_has_a_channel_rule_for():
    # A release that gives a module a rule of its own (a set, or a branch of its own) fails here, so the planner's
    # channel tracking is reviewed for it before a YAML that mixes it with plugin rows meets it.
    import inspect

    names = _modules_parse_model_names(inspect.getsource(tasks.parse_model.__wrapped__))
    assert {"Conv", "Concat", "Detect", "Index", "nn.BatchNorm2d", "CBFuse"} <= names  # the source was read
    unknown = sorted(names - planner.KNOWN_TO_PARSE_MODEL)
    assert not unknown, f"parse_model has channel rules for modules the planner does not know: {unknown}"


def test_missing_internal_fails_with_a_message_naming_the_ultralytics_version():
    import ultralytics

    fake = types.ModuleType("ultralytics.nn.tasks")
    with pytest.raises(ImportError, match=rf"missing in ultralytics {ultralytics.__version__}.*supports ultralytics"):
        registration.require(fake, "parse_model")


def test_plugin_classes_are_safe_globals_for_weights_only_loading():
    safe = set(torch.serialization.get_safe_globals())
    assert set(registration.SAFE_GLOBALS) <= safe


def test_interpreter_start_imports_neither_torch_nor_ultralytics():
    result = run_python("import sys; print('torch' in sys.modules, 'ultralytics' in sys.modules)")
    assert result.stdout.split() == ["False", "False"], result.stderr
    importtime = run([sys.executable, "-X", "importtime", "-c", "pass"])
    modules = [line.rsplit("|", 1)[-1].strip() for line in importtime.stderr.splitlines()]
    assert "ultralytics_convmixer._hook" in modules  # the .pth hook is installed and ran
    assert not [m for m in modules if m.split(".")[0] in {"torch", "ultralytics", "numpy"}]


def test_the_model_layer_imports_without_ultralytics():
    code = (
        "import sys\nfrom ultralytics_convmixer import ConvMixerBackbone, ConvMixerBlock, ConvMixerStage, PatchEmbed\n"
        "import torch\nlevels = ConvMixerBackbone(3, [16, 24, 32], [1, 1, 1], 3)(torch.zeros(1, 3, 64, 64))\n"
        "print([tuple(x.shape) for x in levels], sorted(m for m in sys.modules if m.split('.')[0] == 'ultralytics'))"
    )
    result = run_python(code)
    assert result.stdout.strip() == "[(1, 16, 8, 8), (1, 24, 4, 4), (1, 32, 2, 2)] []", result.stderr[-2000:]


@pytest.mark.smoke
def test_a_fresh_interpreter_sees_the_plugin_without_importing_it():
    code = "from ultralytics.nn.tasks import DetectionModel; print(type(DetectionModel('yolov8n-convmixer.yaml', verbose=False).model[0]).__name__)"  # noqa: E501
    assert run_python(code).stdout.strip() == "ConvMixerBackbone"


def test_without_the_start_up_hook_stock_ultralytics_does_not_know_the_module():
    packaged = resources.model_yaml("yolov8n-convmixer.yaml")  # by path: finding it by name is the plugin's work too
    code = f"from ultralytics.nn.tasks import DetectionModel; DetectionModel({str(packaged)!r}, verbose=False)"
    result = run_python(code, env={"ULTRALYTICS_CONVMIXER_NO_HOOK": "1"})
    # proves the hook, not an accidental import, makes the other tests pass
    assert result.returncode != 0 and "KeyError: 'ConvMixerBackbone'" in result.stderr, result.stderr[-2000:]


def test_the_import_hook_keeps_ultralytics_loaders_copyable_and_picklable():
    import copy
    import pickle

    import ultralytics.utils.ops as ops

    loader = ops.__loader__  # wrapped by the start-up hook; copy and pickle build it without calling __init__
    for clone in (copy.copy(loader), pickle.loads(pickle.dumps(loader))):
        assert clone.get_filename(ops.__name__) == loader.get_filename(ops.__name__) == ops.__file__


def test_wheel_ships_the_yamls_and_the_start_up_hook(tmp_path):
    import zipfile

    root = Path(__file__).resolve().parents[1]
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path, root], timeout=300, check=True)
    (wheel,) = tmp_path.glob("ultralytics_convmixer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ultralytics_convmixer.pth" in names  # at the site-packages root, where `site` runs it
    assert {f"ultralytics_convmixer/model_yamls/{p.name}" for p in resources.model_yamls()} <= names
    assert "ultralytics_convmixer/datasets/shapes-detect.yaml" in names


def test_explicit_import_on_an_ultralytics_without_a_needed_internal_fails_naming_the_version():
    code = (
        "import ultralytics.nn.tasks as t, ultralytics\n"
        "del t.parse_model  # as if a new release had removed it\n"
        "try:\n    import ultralytics_convmixer\nexcept ImportError as e:\n    print('ERROR', e)\n"
    )
    result = run_python(code, env={"ULTRALYTICS_CONVMIXER_NO_HOOK": "1"})
    assert "ERROR ultralytics-convmixer relies on ultralytics.nn.tasks.parse_model" in result.stdout
    assert "missing in ultralytics 8." in result.stdout and "supports ultralytics>=" in result.stdout


def test_a_failed_start_up_registration_warns_patches_nothing_and_raises_on_use():
    code = (
        "import warnings, ultralytics_convmixer.integration.registration as r\n"
        "def missing(module, name):\n    raise ImportError(f'simulated: no {name} in this release')\n"
        "r.require = missing  # as if the installed Ultralytics lacked an internal the plugin needs\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import ultralytics.nn.tasks, ultralytics.data.utils\n"
        "print('WARNED', any('could not register' in str(w.message) for w in caught))\n"
        "print('PATCHED', getattr(ultralytics.data.utils.check_det_dataset, '_convmixer', False))\n"
        "try:\n    import ultralytics_convmixer as u; u.register()\nexcept ImportError as e:\n    print('ERROR', e)\n"
    )
    lines = run_python(code).stdout.splitlines()
    assert lines == ["WARNED True", "PATCHED False", "ERROR simulated: no parse_model in this release"]


@pytest.mark.parametrize("value, hooked", [("1", False), ("0", True), ("", True)])
def test_the_no_hook_variable_switches_the_hook_off_only_when_set_to_something_but_0(value, hooked):
    code = "import sys; print('ultralytics_convmixer' in sys.modules)"
    result = run_python(code, env={"ULTRALYTICS_CONVMIXER_NO_HOOK": value})
    assert result.stdout.strip() == str(hooked)


@pytest.mark.smoke
def test_a_release_outside_the_declared_range_warns_once_at_start_up_and_the_plugin_still_registers():
    from ultralytics_convmixer.integration.versions import declared

    code = """
        import warnings
        import ultralytics_convmixer.integration.versions as versions
        versions.installed = lambda: {"ultralytics": "8.2.103", "torch": "1.13.1"}  # as if these were installed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import ultralytics.nn.tasks as tasks
            versions.warn_outside_declared_ranges()  # again: still one warning each
        for w in caught:
            if "ultralytics-convmixer supports" in str(w.message):
                print("WARNING", w.message)
        print("REGISTERED", hasattr(tasks, "ConvMixerBackbone"))
        """
    result = run_python(code, check=True)
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2 and "Traceback" not in result.stderr
    assert f"supports ultralytics{declared('ultralytics')}, and this is ultralytics 8.2.103" in warnings[0]
    assert f"supports torch{declared('torch')}, and this is torch 1.13.1" in warnings[1]
    assert "REGISTERED True" in result.stdout
