"""The GAN playground trains headless and counts modes correctly."""
import numpy as np
import pytest
import torch

from course_lib import playground as pg


def _blobs(centers, counts, std=0.03, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + std * rng.standard_normal((n, 2)) for c, n in zip(centers, counts)])


def test_modes_covered_counts_synthetic_sets():
    c = pg.ring_centers()
    assert pg.modes_covered(_blobs(c, [100] * 8), c) == 8
    assert pg.modes_covered(_blobs(c[:3], [100] * 3), c) == 3
    assert pg.modes_covered(c[:1] + 10.0, c) == 0                     # far from every mode
    # one mode holding 1% of the points is below the 2% threshold: not covered
    assert pg.modes_covered(_blobs(c[:2], [990, 10]), c) == 1
    assert pg.modes_covered(np.zeros((0, 2)), c) == 0
    assert pg.high_quality_fraction(_blobs(c, [10] * 8), c) == 1.0
    # 8 modes "covered" while half the points lie between them: the pair tells it apart
    between = np.concatenate([_blobs(c, [50] * 8), 1.0 * np.ones((400, 2))])
    assert pg.modes_covered(between, c) == 8 and pg.high_quality_fraction(between, c) == 0.5
    assert pg.high_quality_fraction(np.zeros((0, 2)), c) == 0.0


@pytest.mark.parametrize("kind", pg.DATASETS)
def test_sample_data(kind):
    x = pg.sample_data(kind, 500, generator=torch.Generator().manual_seed(0))
    assert x.shape == (500, 2) and x.abs().max() < 3
    if kind == "ring":
        assert pg.modes_covered(x.numpy(), pg.ring_centers()) == 8
    with pytest.raises(ValueError):
        pg.sample_data("swissroll", 3)


@pytest.mark.parametrize("loss", ["ns", "wgan-clip", "wgan-gp"])
def test_train_runs_headless_and_returns_snapshots(loss):
    cfg = pg.PlaygroundConfig(loss=loss, g_steps=12, snapshots=3, width=16, batch_size=32, eval_points=200, grid=8)
    run = pg.run_playground(cfg)
    assert [s.step for s in run.snapshots] == [0, 4, 8, 12]
    assert run.final.points.shape == (200, 2) and np.isfinite(run.final.points).all()
    assert run.final.surface.shape == (8, 8)
    assert 0 <= run.final.modes <= 8
    for snap in run.snapshots:  # the fraction travels beside the mode count
        assert snap.high_quality_fraction == pg.high_quality_fraction(snap.points, pg.ring_centers())
    assert len(run.history["g_loss"]) == 12
    if loss == "ns":
        assert run.final.surface.min() >= 0 and run.final.surface.max() <= 1   # probabilities


def test_plots_render_headless():
    import matplotlib
    matplotlib.use("Agg")
    run = pg.run_playground(pg.PlaygroundConfig(data="moons", g_steps=4, snapshots=2, width=8, eval_points=50, grid=4))
    assert run.final.modes == -1                      # no modes for non-ring data
    assert np.isnan(run.final.high_quality_fraction)
    fig = pg.plot_snapshots(run)
    assert len(fig.axes) == 3
    html = pg.animate(run).to_jshtml()
    assert "<script" in html


def test_bad_config():
    with pytest.raises(ValueError):
        pg.PlaygroundConfig(loss="hinge")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        pg.PlaygroundConfig(optimizer="sgd")
    with pytest.raises(ValueError):
        pg.PlaygroundConfig(data="circles")


def test_collapse_preset_collapses_on_every_seed():
    """The "collapse" preset ends on <= 2 modes with most points sharp (seeds 0-2, the full
    600 generator steps, about 3 s a seed): mode collapse, not divergence. The old preset
    (lr_g 1e-3, lr_d 1e-4) ended with 0 modes and 0% of the points on the ring."""
    cfg = pg.PlaygroundConfig(**pg.PRESETS["collapse"], grid=4)
    assert cfg.g_steps == pg.PlaygroundConfig().g_steps  # what chapter 03 runs at the cpu profile
    results = pg.coverage_over_seeds(cfg, seeds=(0, 1, 2))
    assert [r.seed for r in results] == [0, 1, 2]
    for r in results:
        assert r.modes <= 2 and r.high_quality_fraction >= 0.5, results


def test_wgan_clip_preset_is_the_papers_rmsprop_setting():
    """Arjovsky et al. 2017, Algorithm 1: RMSProp, lr 5e-5, n_critic 5, c = 0.01."""
    cfg = pg.PlaygroundConfig(**pg.PRESETS["wgan-clip"])
    assert (cfg.loss, cfg.optimizer, cfg.lr_g, cfg.lr_d, cfg.d_steps, cfg.clip) == \
        ("wgan-clip", "rmsprop", 5e-5, 5e-5, 5, 0.01)
    net = torch.nn.Linear(2, 1)
    assert isinstance(pg._optimizer(net, 1e-3, cfg), torch.optim.RMSprop)
    assert isinstance(pg._optimizer(net, 1e-3, pg.PlaygroundConfig()), torch.optim.Adam)
    run = pg.run_playground(pg.PlaygroundConfig(**{**pg.PRESETS["wgan-clip"], "g_steps": 6}, snapshots=2, width=16,
                                       eval_points=100, grid=4))
    assert len(run.history["d_loss"]) == 6 and np.isfinite(run.history["d_loss"]).all()


def test_ui_trains_with_the_chosen_optimizer_and_reports_both_numbers(capsys, monkeypatch):
    pytest.importorskip("ipywidgets")
    import matplotlib
    matplotlib.use("Agg")
    seen = []
    real_train = pg.run_playground
    monkeypatch.setattr(pg, "run_playground", lambda cfg: seen.append(cfg) or real_train(cfg))
    ui = pg.playground_ui(pg.PlaygroundConfig(**pg.PRESETS["wgan-clip"], snapshots=1, width=8, eval_points=50,
                                              grid=4, batch_size=16))
    ui.children[0].children[-1].click()                       # the "Train" button
    assert seen and seen[0].optimizer == "rmsprop" and seen[0].loss == "wgan-clip"
    out = capsys.readouterr().out
    assert "modes covered" in out and "of the points on a mode" in out
