"""Importing timm ConvMixers: features equal timm's, every task trains from the checkpoint, bad input is refused."""

import argparse
from pathlib import Path

import pytest
import torch

from ultralytics_convmixer.pretrained.patch_resize import RESIZE_METHODS, resize_kernel, resize_matrix
from ultralytics_convmixer.pretrained.timm_import import TimmImportError, build_trunk, import_timm, read_source

from checks import assert_export_matches, with_running_statistics
from conftest import (
    TRAIN_ONE_EPOCH,
    cli_command,
    kill_and_resume,
    real_dataset,
    run,
    run_python,
    tiny_classify_data,
)

timm = pytest.importorskip("timm", reason="timm is not installed: pip install 'ultralytics-convmixer[timm]'")
from timm.models.convmixer import ConvMixer  # noqa: E402

# One small model of each published shape family: (kernel, patch, activation) as the paper's three checkpoints.
FAMILIES = {
    "k9-p7-gelu (1536/20)": dict(kernel_size=9, patch_size=7, act_layer=torch.nn.GELU),
    "k7-p7-relu (768/32)": dict(kernel_size=7, patch_size=7, act_layer=torch.nn.ReLU),
    "k9-p14-gelu (1024/20)": dict(kernel_size=9, patch_size=14, act_layer=torch.nn.GELU),
}
REAL = ["convmixer_1536_20", "convmixer_768_32", "convmixer_1024_20_ks9_p14"]


def small_convmixer(family: str = "k9-p7-gelu (1536/20)", dim: int = 32, depth: int = 2, seed: int = 0):
    """A random timm ConvMixer with BatchNorm statistics far from identity, in eval mode."""
    torch.manual_seed(seed)
    return with_running_statistics(ConvMixer(dim=dim, depth=depth, num_classes=10, **FAMILIES[family]))


def assert_trunk_equals_timm(model, size: int) -> None:
    state, trunk = read_source(model)
    native = build_trunk(state, trunk, patch=trunk.patch)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (trunk.mean, trunk.std))
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.forward_features((x - mean) / std)  # timm's features before pooling
        got = native(x)  # YOLO images: [0, 1], normalization folded into the stem
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_the_yolo_backbone_runs_that_trunk_at_its_stride():
    model = small_convmixer()
    state, trunk = read_source(model)
    backbone = import_timm(model, scale="n").model.model[0]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(backbone.trunk(backbone.stem(x)), build_trunk(state, trunk)(x))


@pytest.mark.parametrize("family", FAMILIES)
def test_trunk_features_equal_timm_forward_features_at_the_native_patch(family):
    assert_trunk_equals_timm(small_convmixer(family), 112)


@pytest.mark.parametrize("name", REAL)
def test_real_configs_built_without_weights_give_timm_features(name):
    model = with_running_statistics(timm.create_model(name, pretrained=False))
    assert_trunk_equals_timm(model, 56 if "p14" not in name else 112)


@pytest.mark.parametrize("name, stride, kernel, act", [(REAL[0], 8, 9, "gelu"), (REAL[1], 8, 7, "relu"),
                                                       (REAL[2], 16, 9, "gelu")])  # fmt: skip
def test_real_configs_become_the_papers_block_at_yolo_strides(name, stride, kernel, act):
    model = timm.create_model(name, pretrained=False)
    result = import_timm(model, scale="n")
    backbone = result.model.model[0]
    block = backbone.trunk[0]
    assert backbone.design == f"isotropic{stride}" and backbone.stem.conv.stride == (stride, stride)
    assert len(backbone.trunk) == len(model.blocks) and backbone.dim == model.num_features
    assert block.shortcut is False and block.dw.order == block.pw.order == "conv-act-bn"  # the paper's block
    assert block.dw.conv.kernel_size == (kernel, kernel) and block.dw.conv.bias is not None
    assert result.config.act == act and type(block.dw.act).__name__ == {"gelu": "GELU", "relu": "ReLU"}[act]
    assert result.model.stride.tolist() == [8.0, 16.0, 32.0]


def test_every_trunk_tensor_goes_in_by_value_and_only_the_classifier_is_left_out():
    model = small_convmixer()
    result = import_timm(model, scale="n")
    ours = result.model.model[0].state_dict()
    timm_state = model.state_dict()
    assert torch.equal(ours["trunk.1.dw.conv.bias"], timm_state["blocks.1.0.fn.0.bias"])
    assert torch.equal(ours["trunk.1.pw.bn.running_var"], timm_state["blocks.1.3.running_var"])
    assert torch.equal(ours["stem.bn.running_mean"], timm_state["stem.2.running_mean"])
    assert set(result.left_out) == {"head.weight", "head.bias"}
    assert len(result.loaded) == len(timm_state) - 2
    # The BatchNorms keep timm's eps even though Ultralytics resets every nn.BatchNorm2d it builds to 1e-3.
    assert {m.eps for m in result.model.model[0].trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-5}


def test_pseudo_inverse_resize_keeps_each_patch_response_and_bilinear_a_flat_kernels():
    weight = torch.randn(4, 3, 7, 7, dtype=torch.float64)
    patches = torch.randn(10, 3, 7, 7, dtype=torch.float64)
    resized = (resize_matrix(7, 8) @ patches.reshape(30, 49).T).T.reshape(10, 3, 8, 8)
    before = torch.einsum("nchw,ochw->no", patches, weight)
    after = torch.einsum("nchw,ochw->no", resized, resize_kernel(weight, 8, "pi"))
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)
    flat = torch.full((4, 3, 7, 7), 0.5, dtype=torch.float64)
    torch.testing.assert_close(resize_kernel(flat, 8, "bilinear").sum(dim=(2, 3)), flat.sum(dim=(2, 3)))


def test_nearest_scale_sizes_the_neck_to_the_trunk():
    scales = {name: import_timm(timm.create_model(name, pretrained=False)).scale for name in REAL}
    assert scales == {"convmixer_1536_20": "x", "convmixer_768_32": "x", "convmixer_1024_20_ks9_p14": "l"}


def test_cli_writes_a_checkpoint_and_says_what_it_loaded_and_left_out(tmp_path):
    from ultralytics_convmixer.cli import main

    torch.save({"state_dict": small_convmixer("k7-p7-relu (768/32)").state_dict()}, tmp_path / "relu.pth")
    argv = ["import-timm", tmp_path / "relu.pth", "--act", "relu", "--out", tmp_path / "m.pt", "--yaml",
            tmp_path / "yolov8n-m.yaml", "--scale", "n"]  # fmt: skip
    result = run(cli_command(*argv), check=True)
    assert "loaded 35 timm tensors by value" in result.stdout and "kernel 7x7 resized to 8x8" in result.stdout
    assert "left out head.weight: timm's classifier head (10, 32)" in result.stdout
    assert (tmp_path / "m.pt").is_file() and "ConvMixerBackbone" in (tmp_path / "yolov8n-m.yaml").read_text()
    assert main(["import-timm", str(tmp_path / "relu.pth"), "--out", str(tmp_path / "m.pt")]) == 2  # exists
    assert main(["import-timm", str(tmp_path / "relu.pth"), "--out", str(tmp_path / "m.pt"), "--force"]) == 0


def test_the_yaml_written_beside_builds_the_same_architecture_untrained(tmp_path):
    from ultralytics import YOLO

    from ultralytics_convmixer.pretrained.timm_import import write_model_yaml

    result = import_timm(small_convmixer(), scale="s", out=tmp_path / "m.pt")
    write_model_yaml(result, tmp_path / "yolov8s-m.yaml")
    scratch = YOLO(str(tmp_path / "yolov8s-m.yaml")).model
    assert {k: v.shape for k, v in scratch.state_dict().items()} == {
        k: v.shape for k, v in YOLO(str(tmp_path / "m.pt")).model.state_dict().items()
    }
    assert not torch.equal(scratch.model[0].trunk[0].dw.conv.weight, result.model.model[0].trunk[0].dw.conv.weight)


# ----------------------------------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing written
# ----------------------------------------------------------------------------------------------------------------------
def test_a_timm_name_that_is_not_a_convmixer_is_refused(tmp_path):
    with pytest.raises(TimmImportError, match="'resnet18' is not a ConvMixer; the timm ConvMixers are convmixer_"):
        import_timm("resnet18", out=tmp_path / "x.pt")
    with pytest.raises(TimmImportError, match="'convmixr_768_32' is an unknown timm name"):
        import_timm("convmixr_768_32", out=tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(TimmImportError, match="notes.pth: not a checkpoint torch or safetensors can read"):
        import_timm(tmp_path / "notes.pth", out=tmp_path / "x.pt")
    with pytest.raises(TimmImportError, match="checkpoint file not found: .*missing.safetensors"):
        import_timm(tmp_path / "missing.safetensors")
    assert not (tmp_path / "x.pt").exists()


def test_another_architecture_is_refused_naming_its_first_tensor_and_shape(tmp_path):
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(TimmImportError, match=r"first tensor 'conv1.weight' \(64, 3, 7, 7\) does not fit"):
        import_timm(tmp_path / "resnet.pth", out=tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(tmp_path):
    from safetensors.torch import save_file

    state = small_convmixer().state_dict()
    state["blocks.1.1.weight"] = torch.zeros(32, 16, 1, 1)
    save_file(state, str(tmp_path / "bad.safetensors"))
    message = r"'blocks.1.1.weight' has shape \(32, 16, 1, 1\), but a ConvMixer-32/2 .* needs \(32, 32, 1, 1\)"
    with pytest.raises(TimmImportError, match=message):
        import_timm(tmp_path / "bad.safetensors")


def test_unknown_task_existing_out_and_contradicting_act_are_refused(tmp_path):
    model = small_convmixer()
    with pytest.raises(TimmImportError, match="unknown task 'detection'; choose from detect, segment"):
        import_timm(model, task="detection")
    (tmp_path / "x.pt").write_bytes(b"keep me")
    with pytest.raises(TimmImportError, match="x.pt exists; pass --force"):
        import_timm(model, out=tmp_path / "x.pt")
    assert (tmp_path / "x.pt").read_bytes() == b"keep me"
    with pytest.raises(TimmImportError, match="uses gelu; act='relu' contradicts it"):
        import_timm(model, act="relu")


def test_a_timm_name_without_timm_says_how_to_install_it(tmp_path):
    code = "import sys; sys.modules['timm'] = None\nfrom ultralytics_convmixer.cli import main\n"
    code += f"sys.exit(main(['import-timm', 'convmixer_768_32.in1k', '--out', {str(tmp_path / 'x.pt')!r}]))"
    result = run_python(code)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "needs timm: pip install 'ultralytics-convmixer[timm]'" in result.stderr
    assert not (tmp_path / "x.pt").exists()


def test_a_timm_name_offline_and_not_cached_says_which_file_to_fetch(tmp_path, monkeypatch):
    # huggingface_hub reads HF_HUB_CACHE once, on import; its lookups read this constant, so an empty cache it is even
    # on a machine whose real cache holds the model.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(TimmImportError) as error:
        import_timm("convmixer_768_32.in1k", out=tmp_path / "x.pt")
    message = str(error.value)
    assert "offline" in message
    assert "https://huggingface.co/timm/convmixer_768_32.in1k/resolve/main/model.safetensors" in message
    assert "--act relu" in message and not (tmp_path / "x.pt").exists()


def test_a_timm_name_loads_from_the_hugging_face_cache_offline(tmp_path):
    """A cached hub file (as `hf download timm/...` leaves it) is found by name with no network."""
    from safetensors.torch import save_file

    model = timm.create_model("convmixer_768_32", pretrained=False)
    snapshot = tmp_path / "hub" / "models--timm--convmixer_768_32.in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file(model.state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    code = """
        from ultralytics_convmixer import import_timm
        r = import_timm("convmixer_768_32.in1k", scale="n")
        print("IMPORTED", r.config.describe(), len(r.loaded))
        """
    result = run_python(code, env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}, check=True)
    assert (
        "IMPORTED ConvMixer-768/32, kernel 7, patch 7 -> stride 8, relu 455" in result.stdout
    )  # 7 stem + 32 x 14 block tensors


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoint files as they are saved: timm's train.py, Hugging Face downloads, DataParallel, other objects
# ----------------------------------------------------------------------------------------------------------------------
def test_a_timm_train_py_checkpoint_with_its_args_and_optimizer_imports(tmp_path):
    model = small_convmixer("k7-p7-relu (768/32)")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(1, 3, 28, 28)).sum().backward()
    optimizer.step()  # a momentum buffer per parameter, as a real checkpoint has
    args = argparse.Namespace(model="convmixer_768_32", lr=0.1, epochs=300, input_size=None, mean=(0.5, 0.5, 0.5))
    checkpoint = {"epoch": 3, "arch": "convmixer_768_32", "state_dict": model.state_dict(),
                  "optimizer": optimizer.state_dict(), "version": 2, "args": args}  # fmt: skip
    torch.save(checkpoint, tmp_path / "model_best.pth.tar")  # as train.py names it
    state, trunk = read_source("model_best.pth.tar", act="relu")  # a bare name: a file by its suffix
    assert (
        set(state) == set(model.state_dict())
        and trunk.describe() == "ConvMixer-32/2, kernel 7, patch 7 -> stride 8, relu"
    )


def test_a_checkpoint_of_other_pickled_objects_names_them_without_torchs_advice(tmp_path):
    np = pytest.importorskip("numpy")
    torch.save({"state_dict": small_convmixer().state_dict(), "best_metric": np.float64(0.5)}, tmp_path / "np.pth")
    with pytest.raises(TimmImportError) as error:
        read_source(tmp_path / "np.pth")
    message = str(error.value)
    assert "np.pth: holds pickled objects other than tensors (unsupported global numpy." in message
    assert "torch.save(model.state_dict()" in message and "\x1b" not in message and "PyTorch 2.6" not in message


def test_a_dict_without_tensors_is_refused_naming_its_keys(tmp_path):
    torch.save({"epoch": 3, "arch": "convmixer_768_32", "weights": [1.0, 2.0]}, tmp_path / "meta.pth")
    with pytest.raises(TimmImportError, match="meta.pth: not a state dict .* keys 'epoch', 'arch', 'weights'"):
        read_source(tmp_path / "meta.pth")


@pytest.mark.parametrize("wrap", ["bin", "model key", "module prefix"])
def test_bin_files_model_keys_and_dataparallel_prefixes_are_read(tmp_path, wrap):
    state = small_convmixer().state_dict()
    if wrap == "model key":
        state = {"model": state, "epoch": 3}
    elif wrap == "module prefix":  # saved from DataParallel or DistributedDataParallel
        state = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / ("pytorch_model.bin" if wrap == "bin" else "weights.pth")
    torch.save(state, path)
    read, trunk = read_source(path, act="gelu")
    assert set(read) == set(small_convmixer().state_dict()) and (trunk.dim, trunk.depth) == (32, 2)


def test_a_corrupt_safetensors_file_is_named(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(TimmImportError, match=r"broken.safetensors: not a .safetensors file safetensors can read \("):
        read_source(tmp_path / "broken.safetensors")


def test_a_folder_is_read_through_its_hub_weights_file(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "download").mkdir()
    torch.save(small_convmixer().state_dict(), tmp_path / "download" / "pytorch_model.bin")
    save_file(small_convmixer(dim=16).state_dict(), str(tmp_path / "download" / "model.safetensors"))
    _, trunk = read_source(tmp_path / "download", act="gelu")  # model.safetensors first, as timm
    assert trunk.dim == 16 and trunk.source == str(tmp_path / "download" / "model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TimmImportError, match="empty is a folder without model.safetensors or pytorch_model.bin"):
        read_source(str(tmp_path / "empty"))


@pytest.mark.parametrize("source", ["weights/convmixer_768_32.in1k", "convmixer.pth", Path("convmixer_768_32.in1k")])
def test_a_missing_path_is_a_file_not_found_not_a_timm_name(source):
    with pytest.raises(TimmImportError, match="checkpoint file not found: .*convmixer"):
        read_source(source)


def test_a_bare_file_says_it_assumed_gelu_and_an_instance_does_not(tmp_path):
    torch.save(small_convmixer().state_dict(), tmp_path / "gelu.pth")
    with pytest.warns(UserWarning, match="gelu.pth: activation gelu assumed .* pass act='relu' for convmixer_768_32"):
        result = import_timm(tmp_path / "gelu.pth", scale="n")
    assert result.config.act_assumed
    assert (
        "  activation gelu assumed (a bare checkpoint file does not record it; pass --act relu for convmixer_768_32)"
        in (result.summary().splitlines())
    )
    assert "assumed" not in import_timm(small_convmixer(), scale="n").summary()
    assert not read_source(tmp_path / "gelu.pth", act="gelu")[1].act_assumed


def test_an_unknown_activation_is_refused_naming_the_allowed_ones(tmp_path):
    torch.save(small_convmixer().state_dict(), tmp_path / "m.pth")
    with pytest.raises(TimmImportError, match="act must be one of gelu, silu, relu, hardswish, got 'Relu'"):
        import_timm(tmp_path / "m.pth", act="Relu", out=tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_model_of_other_than_rgb_images_is_refused_naming_its_channels():
    torch.manual_seed(0)
    gray = ConvMixer(dim=32, depth=2, kernel_size=9, patch_size=7, in_chans=1, num_classes=10)
    with pytest.raises(TimmImportError, match=r"takes models of RGB images .*got in_chans 1, mean \(0.485"):
        read_source(gray)
    model = small_convmixer()
    model.pretrained_cfg = {"mean": (0.5,), "std": (0.5,)}
    with pytest.raises(TimmImportError, match=r"got in_chans 3, mean \(0.5,\), std \(0.5,\)"):
        read_source(model)


def test_without_a_gflops_count_the_scale_must_be_given(monkeypatch):
    import ultralytics.utils.torch_utils as torch_utils

    monkeypatch.setattr(torch_utils, "get_flops", lambda model, imgsz=640: 0.0)  # as without thop
    with pytest.raises(TimmImportError, match="cannot count GFLOPs .*; pass --scale"):
        import_timm(small_convmixer())
    assert import_timm(small_convmixer(), scale="s").scale == "s"


def test_a_trunk_tensor_the_conversion_leaves_out_is_an_error_not_random_weights():
    from ultralytics_convmixer.pretrained.timm_import import _load_trunk

    model = small_convmixer()
    state, trunk = read_source(model)
    result = import_timm(model, scale="n")
    assert _load_trunk(result.model, state, trunk, "pi") == result.loaded
    del state["blocks.1.1.bias"]  # as if the conversion dropped a tensor
    with pytest.raises(RuntimeError, match=r"left 1 trunk tensors .*unset: \['model.0.trunk.1.pw.conv.bias'\]"):
        _load_trunk(result.model, state, trunk, "pi")


def test_the_torch_free_names_are_the_modules_and_methods_they_name():
    from ultralytics_convmixer.nn.modules import ACTIVATION_MODULES
    from ultralytics_convmixer.nn.options import ACTIVATIONS
    from ultralytics_convmixer.pretrained.options import DEFAULT_RESIZE, RESIZE_NAMES

    assert ACTIVATIONS == tuple(ACTIVATION_MODULES) and RESIZE_NAMES == tuple(RESIZE_METHODS)
    assert DEFAULT_RESIZE in RESIZE_METHODS


def test_cli_checks_the_yaml_folder_before_writing_anything(tmp_path):
    from ultralytics_convmixer.cli import main

    torch.save(small_convmixer().state_dict(), tmp_path / "m.pth")
    argv = ["import-timm", str(tmp_path / "m.pth"), "--out", str(tmp_path / "m.pt"), "--scale", "n"]
    assert main([*argv, "--yaml", str(tmp_path / "missing" / "m.yaml")]) == 2
    assert not (tmp_path / "m.pt").exists()


# ----------------------------------------------------------------------------------------------------------------------
# The checkpoint: train, fresh-process load, freeze, resume, export
# ----------------------------------------------------------------------------------------------------------------------
TASK_DATA = [
    ("detect", "coco8"),
    ("segment", "coco8-seg"),
    ("pose", "coco8-pose"),
    ("obb", "dota8"),
    ("classify", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("task, dataset", TASK_DATA)
def test_every_task_trains_from_the_imported_checkpoint_loads_fresh_and_exports(tmp_path_factory, tmp_path, task,
                                                                                 dataset):  # fmt: skip
    from ultralytics import YOLO

    data = real_dataset(tmp_path_factory, dataset) if dataset else tiny_classify_data(tmp_path)
    weights = import_timm(small_convmixer(), task=task, scale="n", out=tmp_path / "imported.pt").checkpoint
    frozen = []
    model = YOLO(str(weights))
    model.add_callback(
        "on_train_start", lambda t: frozen.extend({p.requires_grad for p in t.model.model[0].parameters()})
    )
    imgsz = 128 if task == "obb" else 64
    model.train(data=str(data), project=str(tmp_path), name="run", freeze=1, **{**TRAIN_ONE_EPOCH, "imgsz": imgsz})
    assert frozen == [False]  # freeze=1 freezes layer 0, the whole ConvMixerBackbone
    best = tmp_path / "run" / "weights" / "best.pt"
    code = f"""
        import torch
        from ultralytics import YOLO
        m = YOLO({str(best)!r})
        eps = {{b.eps for b in m.model.model[0].trunk.modules() if isinstance(b, torch.nn.BatchNorm2d)}}
        print("LOADED", m.task, type(m.model.model[0]).__name__, sorted(eps))
        """
    loaded = run_python(code, env={"ULTRALYTICS_SAFE_LOAD": "1"}, check=True)
    assert f"LOADED {task} ConvMixerBackbone [1e-05]" in loaded.stdout
    imported = YOLO(str(weights))
    exported = imported.export(format="onnx", imgsz=64, device="cpu")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert_export_matches(exported, YOLO(str(weights)).model.float().eval(), x)


@pytest.mark.slow
def test_yolo_cli_fine_tunes_the_imported_checkpoint_and_resumes_a_killed_run(coco8, tmp_path):
    weights = import_timm(small_convmixer(), scale="n", out=tmp_path / "imported.pt").checkpoint
    killed_output = kill_and_resume(weights, coco8, tmp_path, epochs=2)
    assert "Transferred" in killed_output  # the trainer loaded the imported weights
