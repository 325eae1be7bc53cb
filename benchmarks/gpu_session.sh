#!/usr/bin/env bash
# The H100 checks, in one prepared script (see ../shared/gpu/README.md). Run from the repo root on the GPU machine:
#   source .gpu/device-setup.sh && bash benchmarks/gpu_session.sh $OUT [kernels] [models] [models-triton] [models-variants] [compare] [compare-s]
# Each stage writes JSON/Markdown under OUT and its log to OUT/<stage>.log; stages run in the order given.
set -uo pipefail
out=${1:?usage: gpu_session.sh OUT [kernels] [models] [models-triton] [models-variants] [compare] [compare-s]}
shift
stages=${*:-kernels models compare}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
for stage in $stages; do
  case $stage in
    kernels)  # 9x9 vs cuDNN 7x7 on the four issue shapes, float64 gradient checks for every k and dtype, Inductor
      python3 benchmarks/kernels.py --check --out "$out/kernels.json" ;;
    models)   # train step bs32@640 AMP, fp16 inference bs1/bs32, peak memory; ratios to stock yolov8, same process
      python3 benchmarks/models.py --device 0 --imgsz 640 --batch 32 --scales nslmx --runs 20 --out "$out/models.json" ;;
    models-triton)  # n and s again with the Triton kernels for every k (is the cuDNN default for k <= 7 right?)
      ULTRALYTICS_CONVMIXER_FAST_DWCONV=all python3 benchmarks/models.py --device 0 --imgsz 640 --batch 32 --scales ns \
        --runs 20 --out "$out/models-triton.json" ;;
    models-variants)  # the previous default depths (k3) and the CPU-faster layouts (README, "Speed") on GPU
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
