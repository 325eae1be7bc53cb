#!/usr/bin/env bash
# The H100 checks, in one prepared script (see ../shared/gpu/README.md). Run from the repo root on the GPU machine:
#   source .gpu/device-setup.sh && bash benchmarks/gpu_session.sh $OUT [kernels] [models] [models-triton] [models-variants] [compare] [compare-s]
# Each stage writes JSON/Markdown under OUT and its log to OUT/<stage>.log; stages run in the order given.
set -uo pipefail
out=${1:?usage: gpu_session.sh OUT [kernels] [models] [models-triton] [models-variants] [compare] [compare-s]}
shift
stages=${*:-kernels models compare}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# The installed wheel is what runs (its start-up hook imports it before any sys.path change): it must be this checkout,
# or every number measures stale code. prepare.sh builds the wheel from the working tree; rerun it after any change.
python3 - <<'PY' 2>&1 | tee -a "$out/gpu.txt" || exit 2
import pathlib, sys, torch, ultralytics_convmixer
try:
    import triton
except ImportError:
    triton = None
print("torch", torch.__version__, "| triton", getattr(triton, "__version__", None), "| python", sys.version.split()[0])
installed = pathlib.Path(ultralytics_convmixer.__file__).parent
stale = [p.name for p in sorted(pathlib.Path("ultralytics_convmixer").glob("*.py"))
         if not (installed / p.name).is_file() or (installed / p.name).read_bytes() != p.read_bytes()]
if stale:
    sys.exit(f"the installed ultralytics_convmixer ({installed}) differs from this checkout in {stale}: "
             "run `bash ../shared/gpu/prepare.sh` again before the GPU run")
print("ultralytics_convmixer from", installed, "= this checkout")
PY
for stage in $stages; do
  case $stage in
    kernels)  # 9x9 vs cuDNN 7x7 on the four issue shapes, float64 gradient checks for every k and dtype, Inductor
      python3 benchmarks/kernels.py --check --out "$out/kernels.json" ;;
    models)   # train step bs32@640 AMP, fp16 inference bs1/bs32, peak memory; ratios to stock yolov8, same process
      python3 benchmarks/models.py --device 0 --imgsz 640 --batch 32 --scales nslmx --runs 20 --out "$out/models.json" ;;
    models-triton)  # n and s again with the Triton kernels for every k (is the cuDNN default for k <= 7 right?)
      ULTRALYTICS_CONVMIXER_FAST_DWCONV=all python3 benchmarks/models.py --device 0 --imgsz 640 --batch 32 --scales ns \
        --runs 20 --out "$out/models-triton.json" ;;
    models-variants)  # depths [15, 9, 6] (k3) and the CPU-faster layouts (docs/speed.md) on GPU
      python3 benchmarks/models.py --device 0 --imgsz 640 --batch 32 --scales mlx --runs 20 \
        --variants benchmarks/ablations/yolov8-convmixer-{k3,p4heavy,p4heavy-relu}.yaml \
        --out "$out/models-variants.json" ;;
    compare)  # accuracy on the generated detect set: stock yolov8n vs yolov8n-convmixer, 30 epochs, same seed
      python3 -m ultralytics_convmixer.cli compare --out "$out/compare" epochs=30 imgsz=320 batch=32 workers=8 device=0 ;;
    compare-s)  # the same for the s scale (issue: tuned n and s at least stock mAP50-95)
      python3 -m ultralytics_convmixer.cli compare yolov8s.yaml yolov8s-convmixer.yaml --out "$out/compare-s" \
        epochs=30 imgsz=320 batch=32 workers=8 device=0 ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac 2>&1 | tee "$out/$stage.log"
done
