"""Representation-conditioned generation (course_lib.rcg): the condition's embedding, the
representation generator, and the flow model conditioned on representations."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import flow, guidance, rcg, ssl_flow
from course_lib.diffusion_unet import NULL_LABEL, ConditionalUNet, TimeUNet


def test_embedding_uses_the_null_vector_for_dropped_rows_only():
    emb = rcg.RepresentationEmbedding(rep_dim=8, dim=16)
    with torch.no_grad():
        emb.null.fill_(3.0)
    reps = F.normalize(torch.randn(4, 8), dim=1)
    reps[1] = NULL_LABEL
    out = emb(reps)
    assert out.shape == (4, 16)
    assert torch.all(out[1] == 3.0)
    assert not torch.allclose(out[0], torch.full((16,), 3.0))
    # one entry equal to -1 is a representation, not a dropped one
    partly = reps[:1].clone()
    partly[0, 0] = NULL_LABEL
    assert not torch.allclose(emb(partly)[0], torch.full((16,), 3.0))


def test_embedding_rejects_the_wrong_width():
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        rcg.RepresentationEmbedding(rep_dim=8, dim=16)(torch.zeros(2, 7))


def test_conditional_unet_takes_labels_or_an_embedding_not_both():
    unet = TimeUNet(stem=4, widths=(4, 8, 8), decoder_widths=(8, 4, 4), time_dim=8)
    with pytest.raises(ValueError, match="either"):
        ConditionalUNet(unet=unet)
    with pytest.raises(ValueError, match="either"):
        ConditionalUNet(unet=unet, num_classes=(2,), embed=rcg.RepresentationEmbedding(rep_dim=3, dim=8))


def test_rep_generator_learns_two_directions():
    """Representations in two tight clusters on the sphere: the generator's samples land near
    one of the two centres (a generator that ignores the data would not: random unit vectors
    in 16-d have cosine about 0.25 at most to either)."""
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(2, 16, generator=g), dim=1)
    which = torch.randint(2, (2000,), generator=g)
    reps = F.normalize(centres[which] + 0.05 * torch.randn(2000, 16, generator=g), dim=1)
    gen, losses = rcg.train_rep_generator(reps, rcg.RepFlowConfig(steps=400, width=64, batch_size=128))
    assert losses[-1] < losses[0]
    samples = gen.sample(200, seed=1, steps=20)
    assert samples.shape == (200, 16)
    assert torch.allclose(samples.norm(dim=1), torch.ones(200), atol=1e-5)
    best = (samples @ centres.T).max(dim=1).values
    assert best.median() > 0.9
    # both clusters are drawn, in about their proportions
    share = (samples @ centres.T).argmax(dim=1).float().mean()
    assert 0.25 < share < 0.75
    # seeded
    assert torch.equal(gen.sample(5, seed=3, steps=5), gen.sample(5, seed=3, steps=5))


def test_rep_generator_refuses_a_single_vector():
    with pytest.raises(ValueError, match="N >= 2"):
        rcg.train_rep_generator(torch.ones(1, 4))


def test_nearest_cosine_is_one_for_copies():
    reps = F.normalize(torch.randn(10, 6), dim=1)
    assert torch.allclose(rcg.nearest_cosine(reps[:3], reps), torch.ones(3))


def test_flow_model_conditioned_on_representations_trains_and_guides():
    config = flow.FlowConfig.for_profile("smoke")
    model = ssl_flow.build_model(config, ssl_flow.HelpConfig(), rep_dim=12)
    images = torch.randint(0, 256, (8, 3, config.image_size, config.image_size), dtype=torch.uint8)
    reps = F.normalize(torch.randn(8, 12), dim=1)
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    out = flow.flow_step(model, opt, (images, reps), torch.Generator().manual_seed(0), p_uncond=0.5)
    assert torch.isfinite(out["loss"])
    # the null vector learns (some rows were dropped), the condition MLP too
    embed = model.net.unet.embed
    assert embed.null.grad is not None and embed.mlp[0].weight.grad is not None
    x = guidance.sample_guided(model, reps[:3], scale=2.0, steps=2, seed=0)
    assert x.shape == (3, 3, config.image_size, config.image_size)
    with pytest.raises(ValueError, match="not both"):
        ssl_flow.build_model(config, ssl_flow.HelpConfig(), num_classes=(3,), rep_dim=12)
