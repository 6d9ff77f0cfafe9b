"""Image encoders: the ResNet-18 option and its local pretrained weights."""

from __future__ import annotations

import pytest
import torch

from ript.policies.encoders import CameraEncoder, ResNet18, find_pretrained_resnet18


def test_resnet18_loads_torchvision_style_weights(tmp_path):
    source = ResNet18()
    state = {k: torch.randn_like(v) for k, v in source.state_dict().items()}
    # torchvision files also hold the classifier and BatchNorm counters; both are ignored.
    state.update(
        {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000), "bn1.num_batches_tracked": torch.tensor(0)}
    )
    torch.save(state, tmp_path / "resnet18-test.pth")
    encoder = CameraEncoder("resnet18", 64, 2, 32, pretrained=str(tmp_path / "resnet18-test.pth"))
    torch.testing.assert_close(encoder.backbone.conv1.weight, state["conv1.weight"])
    tokens = encoder(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert tokens.shape == (2, 4, 32)


def test_pretrained_path_resolution(tmp_path):
    assert find_pretrained_resnet18(None) is None
    with pytest.raises(FileNotFoundError, match="pretrained_backbone"):
        find_pretrained_resnet18(str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises((ValueError, RuntimeError)):
        ResNet18().load_pretrained(bad)


def test_images_of_another_size_are_resized():
    encoder = CameraEncoder("cnn", 64, 2, 16)
    assert encoder(torch.randint(0, 256, (1, 96, 96, 3), dtype=torch.uint8)).shape == (1, 4, 16)
