"""Tools for a pretrained start: ImageNet ConvMixer weights from timm as YOLO checkpoints."""
