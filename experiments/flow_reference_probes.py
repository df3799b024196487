"""What did not lift chapter 09's reference flow model further: probes of its plateau.

The reference's Frechet distance stops falling after about 8000 steps
(``flow_reference_steps.json``), a 1.5x wider U-Net trained as long ends a few points lower
(``flow_capacity.json``), and autoguidance by the live model (``autoguidance.json``) is the
best generator of the sample-quality table, still well above the held-out real faces. Before
calling that the end of what this U-Net reaches on a CPU, this script tries the cheap levers,
each scored exactly as ``experiments/autoguidance.py`` scores its scales (n = 500 samples,
sample seed 1, against 500 ToyFaces *validation* faces; the test faces stay unseen), so its
``baseline`` rows must repeat that file's numbers:

- ``sampler``: a stochastic sampler (Euler-Maruyama on the SDE with the flow's marginals, 50
  steps, noise level ``lam``) and Heun-6 time grids denser near the data (``rho`` > 1) or the
  noise (``rho`` < 1); no guidance;
- ``weak``: autoguidance (Karras et al. 2024) with other weak models: the live configuration
  stopped at 1000, 2000 (the chosen one) and 4000 steps, and a U-Net of half the widths trained
  1000 and 2000 steps (Karras et al. degrade both capacity and training);
- ``interval``: autoguidance by the live model only for ``t`` in ``[lo, hi]`` (t = 0 is noise),
  as Kynkaanniemi et al. 2024 limit guidance to the middle noise levels;
- ``cooldown``: the reference's weights trained 4000 more steps with Adam while the learning
  rate falls linearly from 1e-3 to 0 (the cooldown of Hagele et al. 2024), EMA 0.999; is the
  plateau the noise of a constant learning rate? (``cooldown_guided``: its final weights
  autoguided as the baseline is.)

    python experiments/flow_reference_probes.py  # writes course_lib/results_data/flow_reference_probes.json

Rows already in the file (same data version) are kept, so an interrupted run goes on where it
stopped; the cooldown trains through the course's loop and resumes from its checkpoint in
``--run-dir``. Weak models come from the cache (``flow.pretrained_flow``, trained once if missing).
About 25 minutes on one thread with the weak models cached, 10 of them the cooldown.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from course_lib import flow, guidance, metrics
from course_lib.artifacts import read_snapshot, snapshot_callback, snapshot_path, write_result
from course_lib.facedraw import RENDER_VERSION
from course_lib.feature_net import load_feature_net
from course_lib.loop import Step
from course_lib.results import result_path
from course_lib.toyfaces import ToyFaces
from course_lib.trainer import fit

ROOT = Path(__file__).resolve().parents[1]
OUT = result_path("flow_reference_probes")
SNAPSHOT = "cooldown_ema_step"
N_EVAL, SAMPLE_SEED = 500, 1           # autoguidance.py's n and sample seed
HEUN_STEPS = 6                         # autoguidance.py's sampler: Heun 6 (12 calls per sample)
SMALL = {"stem": 8, "widths": (16, 32, 64), "decoder_widths": (32, 16, 8)}   # half the live U-Net's widths
COOLDOWN = {"steps": 4000, "peak_lr": 1e-3, "warmup": 100, "ema_decay": 0.999, "batch_size": 32, "seed": 7}


def weak_configs() -> dict[str, flow.FlowConfig]:
    live = flow.FlowConfig.for_profile("cpu")
    return {"live 1000": dataclasses.replace(live, steps=1000), "live 2000": live,
            "live 4000": dataclasses.replace(live, steps=4000),
            "half width 1000": dataclasses.replace(live, steps=1000, **SMALL),
            "half width 2000": dataclasses.replace(live, **SMALL)}


def probes() -> list[dict]:
    """Every probe's parameters, in the order they run (the cooldown last: it trains)."""
    rows = [{"probe": "baseline", "what": "reference alone, Heun 6"},
            {"probe": "baseline", "what": "autoguided by live 2000, scale 1.5 (autoguidance.json's choice)",
             "weak": "live 2000", "scale": 1.5}]
    rows += [{"probe": "sampler", "what": f"Euler-Maruyama 50, lam {lam}", "lam": lam} for lam in (0.3, 1.0, 3.0)]
    rows += [{"probe": "sampler", "what": f"Heun 6, time grid rho {rho}", "rho": rho} for rho in (0.7, 1.5)]
    rows += [{"probe": "weak", "what": f"autoguided by {weak}, scale {scale}", "weak": weak, "scale": scale}
             for weak in weak_configs() for scale in (1.5, 2.0) if (weak, scale) != ("live 2000", 1.5)]
    rows += [{"probe": "interval", "what": f"autoguided by live 2000, scale {scale}, t in [{lo}, {hi}]",
              "weak": "live 2000", "scale": scale, "interval": [lo, hi]}
             for scale, lo, hi in ((1.5, 0.15, 1.0), (2.0, 0.15, 1.0), (2.0, 0.3, 1.0), (2.0, 0.15, 0.7),
                                   (2.5, 0.3, 0.7))]
    rows += [{"probe": "cooldown", "what": f"fine-tuned {k} of {COOLDOWN['steps']} cooldown steps, Heun 6", "at": k}
             for k in (2000, COOLDOWN["steps"])]
    rows += [{"probe": "cooldown_guided", "what": f"fine-tuned {COOLDOWN['steps']} cooldown steps, autoguided by "
              "live 2000, scale 1.5", "at": COOLDOWN["steps"], "weak": "live 2000", "scale": 1.5}]
    return rows


def time_grid(steps: int, rho: float) -> list[float]:
    """``steps + 1`` times from 0 (noise) to 1 (data): uniform at ``rho`` 1, denser near the data
    for ``rho`` > 1, near the noise for ``rho`` < 1."""
    u = torch.linspace(0, 1, steps + 1)
    return (1 - (1 - u) ** rho).tolist() if rho >= 1 else (u ** (1 / rho)).tolist()


@torch.no_grad()
def sample_on_grid(velocity, n: int, grid: list[float], seed: int) -> torch.Tensor:
    """Heun steps between the times of ``grid``, noise seeded as :func:`course_lib.flow.sample_flow`."""
    out = []
    for first in range(0, n, 256):
        g = torch.Generator().manual_seed(seed + first)
        x = torch.randn((min(256, n - first), 3, 32, 32), generator=g)
        for a, b in zip(grid[:-1], grid[1:]):
            x = flow.heun_step(velocity, x, a, b - a)
        out.append(flow.to_image_range(x))
    return torch.cat(out)


@torch.no_grad()
def sample_sde(velocity, n: int, *, steps: int, lam: float, seed: int) -> torch.Tensor:
    """Euler-Maruyama on ``dx = [v + g^2/2 s] dt + g dW``, ``g^2 = lam (1 - t)``, whose marginals
    are the flow's: for ``x_t = (1 - t) x0 + t x1`` the score is ``s = -(x - t v) / (1 - t)``.
    The last step is the plain Euler step to t = 1 (no noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 3, 32, 32), generator=g)
    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        v = velocity(x, torch.full((n,), t))
        if i == steps - 1:
            return flow.to_image_range(x + dt * v)
        g2 = lam * (1 - t)
        score = -(x - t * v) / (1 - t)
        x = x + dt * (v + g2 / 2 * score) + (g2 * dt) ** 0.5 * torch.randn(x.shape, generator=g)
    raise AssertionError("unreachable")


def cooldown_models(good: flow.FlowModel, at: list[int], run_dir: Path) -> dict[int, flow.FlowModel]:
    """The reference's weights trained on with a linear learning-rate cooldown, through the
    course's loop (:func:`course_lib.trainer.fit`: checkpoints in ``run_dir``, exact resume);
    the EMA copies at the steps ``at``."""
    c = COOLDOWN
    config = dataclasses.replace(flow.reference_config(), steps=c["steps"], seed=c["seed"],
                                 batch_size=c["batch_size"], ema_decay=c["ema_decay"])
    model = config.build()

    def setup(plan):
        model.net.load_state_dict(good.ema.state_dict())
        model.ema.load_state_dict(good.ema.state_dict())
        model.ema_updates.fill_(10 ** 6)             # past the EMA's warm-up: the decay is ema_decay
        model.to(plan.device)
        net = plan.prepare(model.net)
        optimizer = torch.optim.Adam(model.net.parameters(), lr=c["peak_lr"])
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / c["warmup"]) * max(0.0, 1 - s / c["steps"]))
        g = torch.Generator().manual_seed(c["seed"])

        def step(x):
            out = flow.flow_step(model, optimizer, x, g, net=net, time_sampling=config.time_sampling)
            schedule.step()
            return out
        return Step(step, generators=[g]), model, {"adam": optimizer, "cooldown": schedule}

    run_dir.mkdir(parents=True, exist_ok=True)
    snapshots = snapshot_callback(run_dir, every=min(at), keep=lambda k: k in at, prefix=SNAPSHOT,
                                  state=lambda: {"ema": model.ema.state_dict()})
    fit(config, setup, desc="cooldown", checkpoint=run_dir / "checkpoint.pt", progress="line", callbacks=[snapshots])
    kept = {}
    for k in at:
        snapshot = flow.reference_config().build()
        snapshot.ema.load_state_dict(read_snapshot(snapshot_path(run_dir, k, prefix=SNAPSHOT))["ema"])
        kept[k] = snapshot.eval()
    return kept


def guided_in(guided, good, lo: float, hi: float):
    """The guided velocity for ``t`` in ``[lo, hi]``, the good model's alone elsewhere."""
    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return guided(x, t) if lo <= float(t[0]) <= hi else good(x, t)
    return velocity


def images_for(row: dict, good, weak_models: dict, cooled: dict) -> torch.Tensor:
    model = cooled[row["at"]] if "at" in row else good      # the cooldown's rows sample its model
    velocity = model
    if "weak" in row:
        velocity = guidance.autoguided_velocity(model, weak_models[row["weak"]], row["scale"])
        if "interval" in row:
            velocity = guided_in(velocity, model, *row["interval"])
    if "lam" in row:
        return sample_sde(velocity, N_EVAL, steps=50, lam=row["lam"], seed=SAMPLE_SEED)
    if "rho" in row:
        return sample_on_grid(velocity, N_EVAL, time_grid(HEUN_STEPS, row["rho"]), SAMPLE_SEED)
    return flow.sample_flow(model, N_EVAL, steps=HEUN_STEPS, method="heun", seed=SAMPLE_SEED, velocity=velocity)


def run(run_dir: Path) -> dict:
    start, load = time.perf_counter(), os.getloadavg()[0]
    old = json.loads(OUT.read_text()) if OUT.is_file() else {}
    done = {r["what"]: r for r in old.get("rows", [])} if old.get("data_version") == RENDER_VERSION else {}
    good = flow.reference_flow()
    net = load_feature_net(good.image_size)
    real = ToyFaces(split="val", size=N_EVAL, image_size=good.image_size).images
    real_feats = net.features(real)
    todo = [r for r in probes() if r["what"] not in done]
    weak_models = {name: flow.pretrained_flow(config, progress="line").model.cpu().eval()
                   for name, config in weak_configs().items() if any(r.get("weak") == name for r in todo)}
    cooldown_at = sorted({r["at"] for r in todo if "at" in r})
    cooled = cooldown_models(good, cooldown_at, run_dir) if cooldown_at else {}
    rows = []
    for row in probes():
        if row["what"] in done:
            rows.append(done[row["what"]])
            continue
        images = images_for(row, good, weak_models, cooled)
        rows.append({**row, **metrics.sample_scores(real, images, net=net, real_feats=real_feats),
                     "grain": round(float(metrics.grain(images)), 4)})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "metric": metrics.frechet_label(N_EVAL, good.image_size) + ", against ToyFaces validation faces",
        "reference": "course_lib/results_data/flow_reference.pt", "n": N_EVAL, "sample_seed": SAMPLE_SEED,
        "weak_configs": {k: dataclasses.asdict(v) for k, v in weak_configs().items()}, "cooldown": COOLDOWN,
        "data_version": RENDER_VERSION, "rows": rows,
    }
    write_result(OUT, result, script="experiments/flow_reference_probes.py", argv=sys.argv, start=start,
                 load_at_start=load)
    print(f"wrote {OUT}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "flow_reference_probes",
                        help="the cooldown's checkpoint and snapshots (it resumes from them)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run(args.run_dir)


if __name__ == "__main__":
    main()
