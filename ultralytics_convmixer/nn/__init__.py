"""The model layer: the ConvMixer modules and the depthwise convolution with its Triton kernels, in plain PyTorch.

Nothing here imports Ultralytics (``docs/design.md``, "Layout"). Import from the modules (``nn.modules``, ``nn.dwconv``)
or from the package (``from ultralytics_convmixer import ConvMixerBlock``).
"""
