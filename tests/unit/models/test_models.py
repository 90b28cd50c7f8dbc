"""The networks of both papers: shapes, parameter counts, gradients, spectral norm, and the
DB-ResUNet crop/upsample geometry."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnuclei.models import build_model, get_spec, list_models, models_table
from deepnuclei.models.blocks import NarrowBatchNorm3d
from deepnuclei.models.dbresunet import crop_and_upsample, global_patch_start, resample_per_axis
from deepnuclei.models.linus import LiNUS
from deepnuclei.models.vnet import VNet

# small inputs: sides are multiples of 16 (four poolings)
SMALL_SIZE = {2: (32, 32), 3: (16, 32, 32)}


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return models_table().set_index("model")


def small_inputs(name: str, batch: int = 2) -> list[torch.Tensor]:
    spec = get_spec(name)
    patch = torch.randn(batch, spec.network_channels(), *SMALL_SIZE[spec.dims])
    return [patch, torch.randn_like(patch)] if spec.global_patch else [patch]


@pytest.mark.parametrize("name", list_models())
def test_output_shape_and_gradients_reach_every_parameter(name: str) -> None:
    spec = get_spec(name)
    model = build_model(name).train()
    inputs = small_inputs(name)
    outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    for output in outputs:  # DB-ResUNet: main and auxiliary logits, both on their patch's grid
        assert output.shape == (2, spec.n_classes, *inputs[0].shape[2:])
    sum(output.square().mean() for output in outputs).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", [name for name in list_models() if get_spec(name).paper])
def test_parameter_count_matches_paper(name: str, table: pd.DataFrame) -> None:
    row = table.loc[name]
    assert abs(row.params / row.paper_params - 1) < 0.05
    assert row.bytes_float32 == 4 * row.params


def test_table_lists_every_model_with_its_paper_count(table: pd.DataFrame) -> None:
    assert list(table.index) == list_models()
    assert (table.paper_params.notna() == (table.paper != "")).all()  # every model from a paper's table


def test_linus_upsamples_bilinearly_and_normalises_encoder_spectrally() -> None:
    model = LiNUS().train()
    assert not any(isinstance(module, nn.ConvTranspose2d) for module in model.modules())
    with torch.no_grad():
        for _ in range(3):  # each forward in training runs one power iteration
            model(torch.randn(2, 1, 32, 32))
    encoder_convs = [module for module in model.encoder.modules() if isinstance(module, nn.Conv2d)]
    assert len(encoder_convs) == 10  # five levels of DoubleConv
    for convolution in encoder_convs:
        assert torch.nn.utils.parametrize.is_parametrized(convolution, "weight")
        weight = convolution.weight.detach().reshape(convolution.out_channels, -1)
        assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_vnet_defaults_to_milletaris_stages() -> None:
    model = VNet(in_channels=2, width=4).eval()  # narrow: only the structure is checked
    assert [len(stage.convs) for stage in model.encoder] == [1, 2, 3, 3, 3]
    assert [len(stage.convs) for stage in model.decoder] == [3, 3, 2, 1]
    with torch.no_grad():
        assert model(torch.randn(1, 2, 16, 16, 16)).shape == (1, 2, 16, 16, 16)


def test_build_model_takes_channels_classes_and_options() -> None:
    model = build_model("dbresunet", in_channels=1, n_classes=3, rate=(1, 4, 4))
    assert model.rate == (1, 4, 4)
    main, aux = model(torch.randn(1, 1, 16, 32, 32), torch.randn(1, 1, 16, 32, 32))
    assert main.shape[1] == aux.shape[1] == 3
    assert get_spec("dbresunet").with_options(rate=(1, 4, 4)).global_rate == (1, 4, 4)
    assert get_spec("dbresunet").global_rate == (2, 2, 1)
    assert get_spec("resunet").global_rate is None
    with pytest.raises(KeyError, match="known"):
        get_spec("nnunet")


def world_coordinates(shape: tuple[int, ...]) -> torch.Tensor:
    """(1, 3, *shape): each voxel's centre in the original image's voxel units."""
    axes = [torch.arange(size, dtype=torch.float64) + 0.5 for size in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))[None]


def patch_pair(rate: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """World coordinates of a local patch and of the global patch around the same centre, cut
    from a 96^3 image and from its block-average downsampling by `rate`."""
    image = world_coordinates((96, 96, 96))
    local_start, size = (40, 40, 40), (16, 16, 16)
    local = image[(..., *(slice(a, a + n) for a, n in zip(local_start, size)))]
    downsampled = F.avg_pool3d(image, kernel_size=rate)  # the mean of a ramp is its block centre
    global_start = global_patch_start(local_start, size, rate)
    assert all(start == int(start) for start in global_start)
    global_ = downsampled[(..., *(slice(int(g), int(g) + n) for g, n in zip(global_start, size)))]
    return local, global_


@pytest.mark.parametrize("rate", [(1, 1, 1), (2, 2, 2), (4, 4, 4), (1, 2, 2), (1, 2, 4)])
def test_global_features_land_on_the_local_voxels_of_the_same_world_position(
    rate: tuple[int, int, int],
) -> None:
    local, global_ = patch_pair(rate)
    for level in range(4):  # encoder level k: a voxel covers a 2^k block, as after k max-poolings
        local_level = F.avg_pool3d(local, 2**level)
        global_level = F.avg_pool3d(global_, 2**level)
        resampled = crop_and_upsample(global_level, rate, local_level.shape[2:])
        torch.testing.assert_close(resampled, local_level, atol=1e-9, rtol=0)


@pytest.mark.parametrize("rate", [(1, 1, 1), (2, 2, 2), (4, 4, 4), (1, 2, 4)])
def test_an_impulse_in_the_global_patch_lands_at_its_world_position(rate: tuple[int, int, int]) -> None:
    size, hot = (16, 16, 16), (7, 8, 7)  # global voxel index of the impulse, inside the local view
    impulse = torch.zeros(1, 1, *size, dtype=torch.float64)
    impulse[(0, 0, *hot)] = 1.0
    response = crop_and_upsample(impulse, rate, size)[0, 0]
    assert response.sum() > 0
    grid = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in size], indexing="ij")
    centroid = [(axis * response).sum() / response.sum() for axis in grid]
    # global voxel j is centred at n/2 + r (j + 0.5 - n/2) local voxel units from the local patch start
    expected = [n / 2 + r * (j + 0.5 - n / 2) - 0.5 for n, r, j in zip(size, rate, hot)]
    torch.testing.assert_close(torch.stack(centroid), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("rate, size", [((2, 2, 1), (16, 12, 8)), ((4, 4, 1), (4, 6, 2)), ((1, 1, 1), (5, 5, 5)),
                                        ((1.5, 3, 2), (7, 9, 4))])
def test_crop_and_upsample_is_grid_sample_on_the_central_view(rate, size) -> None:
    """Both ways (one interpolate where the sizes allow, per-axis products) equal the affine grid_sample
    they replace (border padding included)."""
    features = torch.randn(2, 3, *size, dtype=torch.float64)
    scale = torch.tensor([1.0 / r for r in reversed(rate)], dtype=torch.float64)
    theta = torch.cat([torch.diag(scale), torch.zeros(3, 1, dtype=torch.float64)], dim=1).expand(2, 3, 4)
    grid = F.affine_grid(theta, [2, 3, *size], align_corners=False)
    expected = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    for resample in (crop_and_upsample, resample_per_axis):
        torch.testing.assert_close(resample(features, rate, size), expected, atol=1e-12, rtol=0)


def test_narrow_batch_norm_on_channels_last_features_is_batch_norm() -> None:
    """The layout round trip changes no number: output, input gradient and running statistics."""
    features = torch.randn(2, 4, 8, 6, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d)
    norms = [NarrowBatchNorm3d(4).double(), nn.BatchNorm3d(4).double()]
    inputs = [features.clone().requires_grad_() for _ in norms]
    outputs = [norm(x) for norm, x in zip(norms, inputs)]
    for output in outputs:
        (output * torch.arange(output.numel(), dtype=torch.float64).reshape(output.shape)).sum().backward()
    assert outputs[0].is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(inputs[0].grad, inputs[1].grad)
    torch.testing.assert_close(norms[0].running_var, norms[1].running_var)
    assert norms[0].state_dict().keys() == norms[1].state_dict().keys()
