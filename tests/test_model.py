"""The GRIZAL model: shapes, padding, gradients, switches, config errors, parameter summary."""

import pytest
import torch

from grizal.losses import compute_losses
from grizal.model import ConfigError, build_model, parameter_summary

D_RGB, D_FLOW, E = 12, 9, 10
TINY = dict(rgb_dim=D_RGB, flow_dim=D_FLOW, prior_dim=E, width=16, heads=2, vle_layers=2, ofe_layers=1,
            ft_layers=1, mlp_ratio=2.0, dropout=0.0, k=2)
TEXT_LEN, IMAGE_LEN = 4, 3


def tiny(**switches):
    torch.manual_seed(0)
    return build_model({**TINY, **switches}).eval()


def make_priors(batch, k_stored=3, name_len=5, seed=1):
    """k_stored pairs of 4 text slots (1-4 real) then 3 real image tokens; 2-5 real name tokens."""
    gen = torch.Generator().manual_seed(seed)
    length = TEXT_LEN + IMAGE_LEN
    token_type = torch.zeros(batch, k_stored, length, dtype=torch.int8)
    token_type[..., TEXT_LEN:] = 1
    text_real = torch.randint(1, TEXT_LEN + 1, (batch, k_stored, 1), generator=gen)
    joint_mask = torch.arange(length) < text_real
    joint_mask[..., TEXT_LEN:] = True
    name_real = torch.randint(2, name_len + 1, (batch, 1), generator=gen)
    return {
        "joint": torch.randn(batch, k_stored, length, E, generator=gen),
        "joint_mask": joint_mask,
        "token_type": token_type,
        "name_tokens": torch.randn(batch, name_len, E, generator=gen),
        "name_mask": torch.arange(name_len) < name_real,
    }


def make_inputs(batch, length, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, D_RGB, generator=gen), torch.randn(batch, length, D_FLOW, generator=gen)


def run(model, rgb, flow, priors=None, **kwargs):
    with torch.no_grad():
        return model(rgb, flow, priors, **kwargs)


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (3, 7), (2, 32)])
def test_output_shapes_for_any_batch_and_length(batch, length):
    model = tiny()
    out = run(model, *make_inputs(batch, length), make_priors(batch))
    assert out["logits"].shape == out["probs"].shape == (batch, length)
    assert out["z_cls"].shape == out["video_embedding"].shape == (batch, 16)
    assert out["z_ft"].shape == (batch, length, 16)
    assert torch.allclose(out["probs"], torch.sigmoid(out["logits"]))
    assert all(torch.isfinite(value).all() for value in out.values())


@pytest.mark.parametrize("switches", [{}, {"use_texts": False}])
def test_padding_does_not_change_real_outputs(switches):
    model = tiny(**switches)
    rgb, flow = make_inputs(3, 10)
    priors = make_priors(3)
    reference = run(model, rgb, flow, priors)

    padded = {key: value.clone() for key, value in priors.items()}
    # garbage in the padded slots, then extra padding columns of garbage
    padded["joint"][~padded["joint_mask"]] = 1e3
    if switches:  # without texts, the sentence tokens are padding as well
        padded["joint"][padded["token_type"] == 0] = 1e3
    padded["name_tokens"][~padded["name_mask"]] = -1e3
    extra = 3
    padded["joint"] = torch.cat([padded["joint"], torch.randn(3, 3, extra, E) * 50], dim=2)
    padded["joint_mask"] = torch.cat([padded["joint_mask"], torch.zeros(3, 3, extra, dtype=torch.bool)], dim=2)
    padded["token_type"] = torch.cat([padded["token_type"], torch.ones(3, 3, extra, dtype=torch.int8)], dim=2)
    padded["name_tokens"] = torch.cat([padded["name_tokens"], torch.randn(3, 4, E) * 50], dim=1)
    padded["name_mask"] = torch.cat([padded["name_mask"], torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    out = run(model, rgb, flow, padded)
    for key in reference:
        torch.testing.assert_close(out[key], reference[key], atol=1e-5, rtol=1e-5)

    # a longer sentence elsewhere in the class pads every pair's text run: image tokens move right
    def insert_after_text(tensor, filler):
        return torch.cat([tensor[:, :, :TEXT_LEN], filler, tensor[:, :, TEXT_LEN:]], dim=2)

    padded["joint"] = insert_after_text(padded["joint"], torch.randn(3, 3, 2, E) * 50)
    padded["joint_mask"] = insert_after_text(padded["joint_mask"], torch.zeros(3, 3, 2, dtype=torch.bool))
    padded["token_type"] = insert_after_text(padded["token_type"], torch.zeros(3, 3, 2, dtype=torch.int8))
    out = run(model, rgb, flow, padded)
    for key in reference:
        torch.testing.assert_close(out[key], reference[key], atol=1e-5, rtol=1e-5)


def test_padding_is_masked_for_text_tokens_too():
    model = tiny()
    rgb, flow = make_inputs(2, 6)
    priors = make_priors(2)
    reference = run(model, rgb, flow, priors)
    priors["joint"][~priors["joint_mask"]] = 1e3
    torch.testing.assert_close(run(model, rgb, flow, priors)["probs"], reference["probs"], atol=1e-5, rtol=1e-5)
    priors["joint"][priors["joint_mask"]] = _shift(priors["joint"][priors["joint_mask"]])  # real tokens matter
    assert not torch.allclose(run(model, rgb, flow, priors)["probs"], reference["probs"], atol=1e-4)


def test_samples_do_not_influence_each_other():
    model = tiny()
    rgb, flow = make_inputs(3, 8)
    priors = make_priors(3)
    together = run(model, rgb, flow, priors)
    alone = run(model, rgb[1:2], flow[1:2], {key: value[1:2] for key, value in priors.items()})
    for key in together:
        torch.testing.assert_close(together[key][1:2], alone[key], atol=1e-5, rtol=1e-5)


def test_prior_index_runs_the_vle_once_per_class_with_the_same_result():
    model = tiny()
    rgb, flow = make_inputs(4, 8)
    classes = make_priors(2)
    index = torch.tensor([1, 0, 1, 1])
    expanded = run(model, rgb, flow, {key: value[index] for key, value in classes.items()})
    indexed = run(model, rgb, flow, {**classes, "index": index})
    for key in expanded:
        torch.testing.assert_close(indexed[key], expanded[key], atol=1e-5, rtol=1e-5)


def test_precomputed_z_cls_gives_the_same_outputs():
    model = tiny()
    rgb, flow = make_inputs(3, 8)
    classes = make_priors(2)
    index = torch.tensor([1, 0, 1])
    with torch.no_grad():
        z_cls = model.encode_priors(classes)
    reference = run(model, rgb, flow, {**classes, "index": index})
    out = run(model, rgb, flow, z_cls=z_cls[index])
    for key in reference:
        torch.testing.assert_close(out[key], reference[key], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="either the priors dict or a precomputed z_cls"):
        run(model, rgb, flow, classes, z_cls=z_cls)


SWITCH_SETS = [
    {},
    {"use_flow": False},
    {"use_fourier": False},
    {"use_flow": False, "use_fourier": False},
    {"use_images": False},
    {"use_texts": False},
    {"use_texts": False, "use_images": False},
]


@pytest.mark.parametrize("switches", SWITCH_SETS)
def test_gradients_reach_every_learnable_parameter_and_no_input(switches):
    model = tiny(**switches).train()
    rgb, flow = make_inputs(3, 12)
    priors = make_priors(3)
    out = model(rgb, flow, priors)
    targets = torch.zeros(3, 12)
    targets[0, 2:6] = 1
    targets[1, 5:11] = 1
    total, _ = compute_losses(out, targets, torch.tensor([0, 1, 2]))
    total.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    assert all(tensor.grad is None for tensor in (rgb, flow, *priors.values()))
    assert not list(model.buffers())  # positions are computed, never learnable or stored


def test_frozen_blocks_receive_no_gradient():
    model = tiny().train()
    model.vle.requires_grad_(False)
    rgb, flow = make_inputs(2, 6)
    out = model(rgb, flow, make_priors(2))
    compute_losses(out, torch.ones(2, 6), torch.tensor([0, 1]))[0].backward()
    assert all(param.grad is None for param in model.vle.parameters())
    assert all(param.grad is not None for param in model.f_transformer.parameters())
    assert "trainable=" in parameter_summary(model)


def _names(model):
    return [name for name, _ in model.named_parameters()]


def _changes(model, rgb, flow, priors, edit):
    before = run(model, rgb, flow, priors)["probs"]
    edited = {key: value.clone() for key, value in priors.items()}
    edit(edited)
    return not torch.allclose(run(model, rgb, flow, edited)["probs"], before, atol=1e-6)


def _shift(tokens):
    """Real change: a random offset per token (the input LayerNorm would cancel a constant or a scale)."""
    return tokens + torch.randn(tokens.shape, generator=torch.Generator().manual_seed(3))


def _edit_images(priors):
    images = priors["token_type"] == 1
    priors["joint"][images] = _shift(priors["joint"][images])


def _edit_texts(priors):
    texts = priors["token_type"] == 0
    priors["joint"][texts] = _shift(priors["joint"][texts])


def _edit_names(priors):
    priors["name_tokens"] = _shift(priors["name_tokens"])


def test_without_flow_there_is_no_flow_block_and_flow_is_not_read():
    with_flow, without = tiny(), tiny(use_flow=False)
    assert not [n for n in _names(without) if n.startswith("ofe.") or "cross_attention" in n]
    assert [n for n in _names(with_flow) if n.startswith("ofe.")]
    rgb, flow = make_inputs(2, 6)
    priors = make_priors(2)
    out = run(without, rgb, None, priors)
    moved = _shift(flow)
    torch.testing.assert_close(run(without, rgb, moved, priors)["probs"], out["probs"])
    assert not torch.allclose(run(with_flow, rgb, moved, priors)["probs"], run(with_flow, rgb, flow, priors)["probs"])
    with pytest.raises(ValueError, match="flow"):
        run(with_flow, rgb, None, priors)


def test_without_fourier_there_is_no_fft_mlp():
    with_fourier, without = tiny(), tiny(use_fourier=False)
    assert not [n for n in _names(without) if "fourier" in n]
    fourier = sum(p.numel() for n, p in with_fourier.named_parameters() if "fourier" in n)
    assert fourier > 0
    assert sum(p.numel() for p in with_fourier.parameters()) - sum(p.numel() for p in without.parameters()) == fourier


@pytest.mark.parametrize(
    ("switches", "images_matter", "texts_matter", "names_matter", "kinds"),
    [
        ({}, True, True, False, {"text", "image"}),
        ({"use_images": False}, False, True, False, {"text"}),
        ({"use_texts": False}, True, False, True, {"image", "name"}),
        ({"use_texts": False, "use_images": False}, False, False, True, {"name"}),
        ({"use_name": True}, True, True, True, {"text", "image", "name"}),
    ],
)
def test_prior_switches_choose_which_tokens_are_read(switches, images_matter, texts_matter, names_matter, kinds):
    model = tiny(**switches)
    rgb, flow = make_inputs(2, 6)
    priors = make_priors(2)
    assert _changes(model, rgb, flow, priors, _edit_images) is images_matter
    assert _changes(model, rgb, flow, priors, _edit_texts) is texts_matter
    assert _changes(model, rgb, flow, priors, _edit_names) is names_matter
    assert set(model.vle.kind_embedding.keys()) == kinds
    assert hasattr(model.vle, "pair_embedding") is (images_matter or texts_matter)


def test_pooled_image_tokens_read_each_image_s_first_token_only():
    model = tiny(image_tokens="pooled")
    priors = make_priors(2)
    rgb, flow = make_inputs(2, 6)

    def edit_patches(edited):
        edited["joint"][..., TEXT_LEN + 1:, :] = _shift(edited["joint"][..., TEXT_LEN + 1:, :])

    def edit_pooled(edited):
        edited["joint"][..., TEXT_LEN, :] = _shift(edited["joint"][..., TEXT_LEN, :])

    assert not _changes(model, rgb, flow, priors, edit_patches)
    assert _changes(model, rgb, flow, priors, edit_pooled)
    assert _changes(tiny(), rgb, flow, priors, edit_patches)  # patches (the default): every image token counts


@pytest.mark.parametrize("switches", [{}, {"use_flow": False}, {"head": "matching"}])
def test_video_index_computes_each_video_once_with_the_same_result(switches):
    model = tiny(**switches)
    rgb, flow = make_inputs(2, 8)
    flow = flow if model.ofe is not None else None
    priors = make_priors(4)
    video_index = torch.tensor([1, 0, 1, 1])
    expanded = run(model, rgb[video_index], flow[video_index] if flow is not None else None, priors)
    indexed = run(model, rgb, flow, priors, video_index=video_index)
    assert expanded.keys() == indexed.keys()
    for key in expanded:
        torch.testing.assert_close(indexed[key], expanded[key], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="4 videos but 3 prior entries"):
        run(model, rgb, flow, make_priors(3), video_index=video_index)


@pytest.mark.parametrize("use_flow", [True, False])
def test_ft_rows_run_the_f_transformer_on_those_samples_only_under_the_matching_head(use_flow):
    model = tiny(head="matching", use_flow=use_flow)
    rgb, flow = make_inputs(4, 8)
    flow = flow if use_flow else None
    priors = make_priors(4)
    full = run(model, rgb, flow, priors)
    rows = torch.tensor([True, False, False, True])
    some = run(model, rgb, flow, priors, ft_rows=rows)
    torch.testing.assert_close(some["z_ft"], full["z_ft"][rows], atol=1e-5, rtol=1e-5)
    for key in ("logits", "probs", "z_cls", "z_rgb", "video_embedding"):
        torch.testing.assert_close(some[key], full[key], atol=1e-5, rtol=1e-5)
    assert torch.equal(some["ft_rows"], rows)
    none = run(model, rgb, flow, priors, ft_rows=torch.zeros(4, dtype=torch.bool))
    assert none["z_ft"].shape == (0, 8, 16)
    torch.testing.assert_close(none["logits"], full["logits"], atol=1e-5, rtol=1e-5)
    # the cosine loss over the rows it reads is the loss over every sample: absent classes weigh nothing
    targets = torch.zeros(4, 8)
    targets[0, 2:5], targets[3, :3] = 1.0, 0.5
    weights = {"bce": 0.0, "tiou": 0.0, "infonce": 0.0}
    expected = compute_losses(full, targets, None, weights)[1]["cosine"]
    assert compute_losses(some, targets, None, weights)[1]["cosine"] == pytest.approx(expected, rel=1e-5)


def test_ft_rows_do_not_change_the_mlp_head_which_reads_z_ft_everywhere():
    model = tiny()
    rgb, flow = make_inputs(3, 8)
    priors = make_priors(3)
    full = run(model, rgb, flow, priors)
    some = run(model, rgb, flow, priors, ft_rows=torch.tensor([True, False, False]))
    assert some.keys() == full.keys()
    for key in full:
        torch.testing.assert_close(some[key], full[key])


def test_matching_head_scores_the_cosine_of_the_class_agnostic_snippet_and_z_cls():
    model = tiny(head="matching")
    with torch.no_grad():
        model.head.scale.fill_(7.0)
        model.head.bias.fill_(-2.0)
    rgb, flow = make_inputs(2, 6)
    out = run(model, rgb, flow, make_priors(2))
    with torch.no_grad():
        z_optical = model.ofe(flow)
    snippets = out["z_rgb"] + z_optical
    cos = torch.nn.functional.cosine_similarity(snippets, out["z_cls"][:, None, :].expand_as(snippets), dim=-1)
    torch.testing.assert_close(out["logits"], 7.0 * cos - 2.0)
    torch.testing.assert_close(out["probs"], torch.sigmoid(7.0 * cos - 2.0))
    assert not any(name.startswith("head.") and "scale" not in name and "bias" not in name
                   for name, _ in model.named_parameters())


def test_matching_head_without_flow_matches_z_rgb_alone():
    model = tiny(head="matching", use_flow=False)
    rgb, _ = make_inputs(2, 6)
    out = run(model, rgb, None, make_priors(2))
    cos = torch.nn.functional.cosine_similarity(out["z_rgb"], out["z_cls"][:, None, :].expand_as(out["z_rgb"]), dim=-1)
    torch.testing.assert_close(out["logits"], model.head.scale * cos + model.head.bias)


def test_matching_head_trains_every_block_it_reads():
    model = tiny(head="matching").train()
    rgb, flow = make_inputs(2, 6)
    out = model(rgb, flow, make_priors(2))
    out["logits"].sum().backward()
    for block in ("vle", "ofe", "rgb_mlp", "head"):
        grads = [p.grad for name, p in model.named_parameters() if name.startswith(block + ".")]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), block


def test_k_reads_the_first_k_stored_pairs():
    model = tiny(k=2)
    rgb, flow = make_inputs(2, 6)
    priors = make_priors(2, k_stored=3)

    def edit_pair(index):
        def edit(edited):
            edited["joint"][:, index] = _shift(edited["joint"][:, index])
        return edit

    assert not _changes(model, rgb, flow, priors, edit_pair(2))
    assert _changes(model, rgb, flow, priors, edit_pair(1))
    assert model.vle.pair_embedding.shape[0] == 2
    with pytest.raises(ValueError, match="hold 3 pairs per class but model.k is 4"):
        run(tiny(k=4), rgb, flow, priors)


def test_layers_and_width_follow_the_config():
    model = tiny(vle_layers=3, ofe_layers=2, ft_layers=2, width=24, heads=3)
    assert len(model.vle.blocks) == 3 and len(model.ofe.blocks) == 2 and len(model.f_transformer.layers) == 2
    out = run(model, *make_inputs(2, 5), make_priors(2))
    assert out["z_cls"].shape == (2, 24) and out["z_ft"].shape == (2, 5, 24)
    assert len(tiny(vle_layers=0).vle.blocks) == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"widht": 64}, "unknown model setting 'widht'"),
        ({"width": 30, "heads": 4}, "divisible"),
        ({"use_flow": "no"}, "model.use_flow must be true or false"),
        ({"k": 2.5}, "model.k must be an integer"),
        ({"k": 0}, "model.k must be at least 1"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"ft_layers": 0}, "model.ft_layers"),
        ({"image_tokens": "mean"}, "model.image_tokens must be one of patches, pooled"),
        ({"head": "cosine"}, "model.head must be one of mlp, matching"),
    ],
)
def test_bad_config_is_a_clear_error(config, message):
    with pytest.raises(ConfigError, match=message):
        build_model({**TINY, **config})


def test_bad_inputs_are_clear_errors():
    model = tiny()
    rgb, flow = make_inputs(2, 6)
    with pytest.raises(ValueError, match="rgb_dim"):
        run(model, torch.randn(2, 6, D_RGB + 1), flow, make_priors(2))
    with pytest.raises(ValueError, match="2 videos but 3 prior entries"):
        run(model, rgb, flow, make_priors(3))
    priors = make_priors(2)
    del priors["name_mask"]
    with pytest.raises(ValueError, match="name_mask"):
        run(model, rgb, flow, priors)


def test_parameter_summary_counts_each_block():
    model = tiny()
    summary = parameter_summary(model)
    assert "\n" not in summary
    for block in ("vle", "ofe", "rgb_mlp", "f_transformer", "head"):
        assert f"{block}=" in summary
    total = sum(p.numel() for p in model.parameters())
    assert f"total={total / 1e3:.1f}k" in summary
    assert "ofe=" not in parameter_summary(tiny(use_flow=False))


def test_default_config_is_the_paper_scale():
    model = build_model({})
    assert model.config.width == 512 and len(model.vle.blocks) == 7 and model.config.k == 4


def test_video_embedding_is_the_probability_weighted_mean_of_z_rgb():
    out = run(tiny(), *make_inputs(2, 9), make_priors(2))
    weights = out["probs"] / out["probs"].sum(1, keepdim=True)
    torch.testing.assert_close(out["video_embedding"], (weights[..., None] * out["z_rgb"]).sum(1))
    assert out["z_rgb"].shape == (2, 9, 16)


@pytest.mark.parametrize("pool_flow", [False, True])
def test_pool_flow_adds_the_flow_stream_to_the_contrastive_video_embedding(pool_flow):
    model = tiny(pool_flow=pool_flow)
    rgb, flow = make_inputs(2, 6)
    out = run(model, rgb, flow, make_priors(2))
    weights = out["probs"] / out["probs"].sum(dim=1, keepdim=True)
    with torch.no_grad():
        pooled = out["z_rgb"] + model.ofe(flow) if pool_flow else out["z_rgb"]
    expected = torch.einsum("bt,btw->bw", weights, pooled)
    assert torch.allclose(out["video_embedding"], expected, atol=1e-5)
