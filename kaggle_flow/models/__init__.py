"""Paddle image classifiers by name: the model registry and what `flow train` does with a model.

Every entry builds a `paddle.nn.Layer` that maps `[N, in_channels, H, W]` to logits `[N, num_classes]`
for any square size H = W >= its `min_size`. The paddle.vision models keep their own layer names, so
the ImageNet weights (`pretrained=True`) and checkpoints load by key; a grey (1-channel) input is
handled by giving the first convolution 1 input channel, initialized from the ImageNet filters summed
over RGB (the way timm adapts input convolutions), so the pretrained weights still help.

    create_model("resnet18", num_classes=4, in_channels=3, pretrained=True)
    create_model("resnet-s", num_classes=10, in_channels=1, image_size=28, weights="runs/mnist/r1/best.pdparams")

Every entry names its classifier head (the last linear layer), the part `--freeze` trains on top of a
frozen backbone (`head_parameters`, `set_backbone_trainable`); engine/speed.py times a training step.

    registry    MODELS, ModelInfo, create_model, param_count and the checks on size and parameters
    nets        SmallCNN, LeNet, and paddle.vision's AlexNet and GoogLeNet at any input size
    resnets     resnet-t/s/m/l, plain residual CNNs for training from scratch
    channels    the first convolution adapted to grey (or any count of) input channels
    weights     ImageNet weights and checkpoints: paddle's cache, fetched, checked, read and loaded into a model
    freeze      the classifier head and the backbone under it, for --freeze
"""

from kaggle_flow.models.freeze import head_parameters, set_backbone_trainable
from kaggle_flow.models.registry import (
    MODELS,
    Builder,
    ImagenetWeights,
    ModelInfo,
    add_imagenet_weights,
    check_params,
    check_size,
    count_params,
    create_model,
    imagenet_weights,
    list_models,
    param_count,
)
from kaggle_flow.models.weights import (
    cached_imagenet,
    download_imagenet,
    fetch_pretrained,
    has_pretrained,
    imagenet_file_name,
    load_weights,
    online,
    weights_home,
)

__all__ = [
    "MODELS", "Builder", "ImagenetWeights", "ModelInfo", "add_imagenet_weights", "cached_imagenet", "check_params",
    "check_size", "count_params", "create_model", "download_imagenet", "fetch_pretrained", "has_pretrained",
    "head_parameters", "imagenet_file_name", "imagenet_weights", "list_models", "load_weights", "online", "param_count",
    "set_backbone_trainable", "weights_home",
]
