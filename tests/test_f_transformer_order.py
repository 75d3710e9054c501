"""The F-Transformer layer's order of operations, as the paper's Section 3.1 and appendix S.1 give it (and as
grizal/model/f_transformer.py's docstring lists): self-attention, add & norm; + Z_CLS at every step; Fourier MLP,
add & norm; cross-attention to Z_optical, add & norm; self-attention, add & norm; MLP, add & norm."""

import torch

from grizal.model.config import ModelConfig
from grizal.model.f_transformer import FTransformerLayer

ORDER = ["self_attention", "norm_self", "fourier", "norm_fourier", "cross_attention", "norm_cross",
         "refine_attention", "norm_refine", "mlp", "norm_mlp"]


def _traced_layer(**switches):
    torch.manual_seed(0)
    layer = FTransformerLayer(ModelConfig(width=16, heads=2, mlp_ratio=2.0, dropout=0.0, **switches)).eval()
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for name in ORDER:
        module = getattr(layer, name)
        if module is not None:
            module.register_forward_hook(lambda _m, args, out, name=name: calls.append((name, args[0], out)))
    return layer, calls


def test_the_operations_run_in_the_papers_order_and_each_norm_closes_its_residual():
    layer, calls = _traced_layer()
    x, z_cls, z_optical = torch.randn(2, 6, 16), torch.randn(2, 16), torch.randn(2, 6, 16)
    out = layer(x, z_cls, z_optical)
    assert [name for name, _, _ in calls] == ORDER
    seen = {name: (given, result) for name, given, result in calls}
    # each sub-block reads the previous norm's output (the first reads x), and its norm reads input + sub-block
    assert torch.equal(seen["self_attention"][0], x)
    assert torch.allclose(seen["norm_self"][0], x + seen["self_attention"][1])
    # Z_CLS is added point-wise to every time step between the first add & norm and the Fourier MLP
    assert torch.allclose(seen["fourier"][0], seen["norm_self"][1] + z_cls[:, None, :])
    assert torch.allclose(seen["norm_fourier"][0], seen["fourier"][0] + seen["fourier"][1])
    assert torch.allclose(seen["cross_attention"][0], seen["norm_fourier"][1])
    assert torch.allclose(seen["norm_cross"][0], seen["norm_fourier"][1] + seen["cross_attention"][1])
    assert torch.allclose(seen["refine_attention"][0], seen["norm_cross"][1])
    assert torch.allclose(seen["norm_refine"][0], seen["norm_cross"][1] + seen["refine_attention"][1])
    assert torch.allclose(seen["mlp"][0], seen["norm_refine"][1])
    assert torch.allclose(seen["norm_mlp"][0], seen["norm_refine"][1] + seen["mlp"][1])
    assert torch.equal(out, seen["norm_mlp"][1])


def test_the_ablations_drop_their_block_and_keep_the_rest_in_order():
    layer, calls = _traced_layer(use_fourier=False, use_flow=False)
    x, z_cls = torch.randn(2, 6, 16), torch.randn(2, 16)
    layer(x, z_cls, None)
    assert [name for name, _, _ in calls] == [n for n in ORDER if "fourier" not in n and "cross" not in n]
    seen = {name: (given, result) for name, given, result in calls}
    assert torch.allclose(seen["refine_attention"][0], seen["norm_self"][1] + z_cls[:, None, :])
