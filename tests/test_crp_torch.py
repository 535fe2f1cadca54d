"""CRP against an independent oracle: Zennit with the gradient masked at the concept layer's
output (the way zennit-crp conditions an attribution) on a torchvision VGG-11 with random
weights, float64, in eval mode, with the stabiliser and max-pooling rule matched as in
test_torch_models.py. Both selectors: fixed channels, and the top channels, whose choice is
checked against the relevance Zennit has at the layer."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("zennit")

import lrp_core as lrp  # noqa: E402

from helpers.torch_models import assert_relevance_close, reinitialise  # noqa: E402

LAYER = "features.8"  # the fourth convolution (256 => 256 channels) and its ReLU


@pytest.fixture(scope="module")
def vgg11():
    torch.manual_seed(0)
    model = reinitialise(torchvision.models.vgg11(weights=None).double().eval(), seed=1)
    for module in model.modules():  # the masking hook below reads the conv's output itself
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    return model, x


def zennit_conditioned(model, x, selection, masks):
    """Zennit's EpsilonPlusFlat relevance at the input for each mask (N, C, 1, 1) applied to the
    gradient (which is the relevance, under Zennit's rules) at ``LAYER``'s output, and the
    unmasked relevance there."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.rules import Norm
    from zennit.torchvision import VGGCanonizer
    from zennit.types import MaxPool

    composite = EpsilonPlusFlat(stabilizer=1e-9, layer_map=[(MaxPool, Norm(stabilizer=1e-9))],
                                canonizers=[VGGCanonizer()])
    onehot = torch.eye(1000, dtype=torch.float64)[selection]
    layer = dict(model.named_modules())[LAYER]
    at_layer, results = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warnings about full backward hooks
        with Gradient(model, composite) as attributor:
            for mask in [None, *masks]:
                def hook(module, inputs, output, mask=mask):
                    def condition(grad):
                        if mask is None:
                            at_layer.append(grad.detach().clone())
                            return grad
                        return grad * mask
                    output.register_hook(condition)

                handle = layer.register_forward_hook(hook)
                try:
                    _, relevance = attributor(x, onehot)
                finally:
                    handle.remove()
                if mask is not None:
                    results.append(relevance)
    return torch.stack(results, dim=1), at_layer[0]


def channel_masks(concepts, channels=256):
    """One mask per concept rank: (N, C, 1, 1) with a 1 at each sample's concept."""
    concepts = np.asarray(concepts)
    masks = []
    for k in range(concepts.shape[1]):
        mask = torch.zeros(len(concepts), channels, 1, 1, dtype=torch.float64)
        mask[torch.arange(len(concepts)), torch.as_tensor(concepts[:, k])] = 1.0
        masks.append(mask)
    return masks


@pytest.mark.slow
def test_crp_equals_zennit_with_a_gradient_mask_on_vgg11(vgg11):
    model, x = vgg11
    analyzer = lrp.LRP(model, lrp.EpsilonPlusFlat())
    fixed = lrp.CRP(analyzer, LAYER, lrp.IndexedFeatures(3, 100))(x)
    top = lrp.CRP(analyzer, LAYER, lrp.TopNFeatures(2))(x)
    assert fixed.val.shape == (2, 2, 3, 32, 32) and top.val.shape == (2, 2, 3, 32, 32)
    assert fixed.output_selection == top.output_selection
    masks = channel_masks(fixed.extras["concepts"]) + channel_masks(top.extras["concepts"])
    expected, at_layer = zennit_conditioned(model, x, fixed.output_selection, masks)
    # the relevance at the layer, and the channels TopNFeatures chose from it
    per_channel = at_layer.sum(dim=(2, 3))
    assert_relevance_close(top.extras["feature_relevance"], per_channel, rtol=1e-6)
    chosen = torch.argsort(per_channel, dim=1, descending=True)[:, :2]
    assert top.extras["concepts"] == chosen.tolist()
    assert top.extras["concepts"] != [[3, 100], [3, 100]]
    # the conditioned relevance at the input, per concept
    assert_relevance_close(fixed.val, expected[:, :2], rtol=1e-6)
    assert_relevance_close(top.val, expected[:, 2:], rtol=1e-6)
    assert float(top.val.abs().max()) > 0
