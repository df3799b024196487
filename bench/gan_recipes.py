"""Which GAN recipe draws the best faces for the same wall time?

Run: ``python bench/gan_recipes.py --base-steps 500`` (writes ``course_lib/results_data/gan_recipes.json``,
which chapter 03 reads with ``load_result("gan_recipes")``, and the table ``bench/results/gan_recipes.txt``;
rerunning continues where it stopped). Two processes: time once, copy the JSON, run
``--worker 0/2`` and ``--worker 1/2 --json COPY``, then ``--merge JSON COPY`` (twice: screen, seeds).

Every recipe is chapter 03's DCGAN (``GANConfig.for_profile("cpu")``: width 32, batch 64,
Adam 2e-4 (0.5, 0.999), the non-saturating loss) with one change:

- steps vs width vs batch: width 16 / 64, batch 32 / 128 (more or fewer steps for the time);
- EMA: sample from an exponential moving average of G's weights (decay 0.999 with
  TensorFlow's warm-up, :func:`course_lib.gan.update_ema`; Yazici et al. 2019);
- TTUR: two time-scales, lr_D 4e-4 and lr_G 1e-4 (Heusel et al. 2017, the values of SAGAN);
- hinge + SN: the hinge loss with spectral normalisation of D (Miyato et al. 2018);
- R1: gamma / 2 E||grad D(x)||^2 on real images, gamma = 1 (Mescheder et al. 2018);
- WGAN-GP (paper): ``gan.PAPER_SETTINGS["wgan-gp"]`` (Gulrajani et al. 2017, Algorithm 1).

**Equal wall time on a loaded machine.** Wall time cannot be compared across runs when other
processes share the CPU, so it is emulated: a short timing phase calls every recipe's step
function on one batch, *interleaved* in one process (round after round, in rotating order),
and takes each recipe's median CPU time per step (one thread) as a ratio to the baseline's. A recipe then
gets ``base_steps * t_base / t_recipe`` discriminator steps (rounded to whole generator
steps). The ratios and budgets are in the results; the seconds are not a claim about an
idle machine. Every run also keeps an EMA copy of G (it never feeds back into training), so
every recipe is scored twice: as trained and "+ EMA" (at the recipe's budget: EMA's own cost,
measured as the "EMA" row's ratio, is charged only to the "EMA" row itself).

**Scores**: bench/sample_quality.py's: the domain Frechet distance, fidelity and diversity
(density and coverage, Naeem et al. 2020) of 1000 samples against 1000 ToyFaces test images.
One training seed for the screen, then seeds 1 and 2 for the baseline and the two best rows.
The verdicts are chapter 03b's family (``course_lib.gan_report.recipe_family``), Holm-corrected:
a recipe against the baseline is two sets of runs (Welch's test); an EMA row against the row
it averages is the same runs sampled two ways (the paired test, by seed).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import torch

from course_lib import gan
from course_lib.artifacts import write_result
from course_lib.feature_net import FeatureNetConfig, load_feature_net
from course_lib.gan_report import recipe_family, recipe_run as row_recipe, recipe_values as row_values
from course_lib.metrics import frechet_label, sample_quality
from course_lib.results import result_path
from course_lib.toyfaces import RENDER_VERSION, ToyFaces

ROOT = Path(__file__).resolve().parents[1]
EMA_DECAY = 0.999
PROFILE = "cpu"  # chapter 03's profile (the tests shrink it to "smoke")
# name -> the change to chapter 03's DCGAN config ("EMA" is the baseline run's EMA copy)
RECIPES: dict[str, dict] = {
    "baseline": {},
    "width 16": dict(width=16),
    "width 64": dict(width=64),
    "batch 32": dict(batch_size=32),
    "batch 128": dict(batch_size=128),
    "EMA": dict(ema_decay=EMA_DECAY),
    "TTUR": dict(lr_g=1e-4, lr_d=4e-4),
    "hinge + SN": dict(loss="hinge", spectral_norm=True),
    "R1": dict(r1_weight=1.0),
    "WGAN-GP (paper)": dict(gan.PAPER_SETTINGS["wgan-gp"]),
}
TRAINED = [name for name in RECIPES if name != "EMA"]   # EMA needs no run of its own
METRICS = ("frechet", "fidelity", "diversity")


def recipe_config(name: str, *, base: gan.GANConfig | None = None, **changes) -> gan.GANConfig:
    """Chapter 03's DCGAN config (or ``base``), without an EMA (the baseline samples its last
    weights), with recipe ``name``'s change and ``changes``."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {list(RECIPES)}, got {name!r}")
    base = dataclasses.replace(base or gan.GANConfig.for_profile(PROFILE), ema_decay=0.0)
    return dataclasses.replace(base, **{**RECIPES[name], **changes})


def time_steps(configs: dict[str, gan.GANConfig], images: torch.Tensor, *, rounds: int = 3,
               calls: int = 5) -> dict[str, float]:
    """Median CPU seconds per step function call of each config, measured interleaved in this
    process: ``rounds`` rounds, each timing ``calls`` calls of every config (order rotated).
    CPU time of this (one-thread) process, not wall time: on a shared machine the wall clock
    counts the other processes' turns too (two recipes with the same arithmetic, the baseline
    and TTUR, came out 9% apart in wall time at load 13)."""
    if rounds < 1 or calls < 1:
        raise ValueError(f"rounds and calls must be >= 1, got {rounds} and {calls}")
    steps = {}
    for name, config in configs.items():
        models = gan.build_models(config)
        opt_g, opt_d = gan.make_optimizers(models["generator"], models["discriminator"], config)
        step = gan.make_step(models["generator"], models["discriminator"], opt_g, opt_d, config,
                             ema=models.get("generator_ema"))
        batch = images[:config.batch_size].float() / 255
        for _ in range(2):                       # warm-up: first calls allocate
            step(batch)
        steps[name] = (step, batch)
    times: dict[str, list[float]] = {name: [] for name in configs}
    names = list(configs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            step, batch = steps[name]
            start = time.process_time()
            for _ in range(calls):
                step(batch)
            times[name].append((time.process_time() - start) / calls)
    return {name: statistics.median(t) for name, t in times.items()}


def budgets(seconds: dict[str, float], configs: dict[str, gan.GANConfig], base_steps: int) -> dict[str, int]:
    """``base_steps * t_baseline / t_recipe``, rounded to whole generator steps (d_steps)."""
    out = {}
    for name, t in seconds.items():
        d = configs[name].d_steps
        out[name] = max(d, int(round(base_steps * seconds["baseline"] / t / d)) * d)
    return out


def train_run(config: gan.GANConfig, images: torch.Tensor, *, keep: dict[str, int]) -> dict[str, torch.nn.Module]:
    """Train ``config`` (with an EMA copy of G) to the largest step in ``keep`` and return
    ``{"generator" | "generator_ema": a copy at step keep[name]}``."""
    config = dataclasses.replace(config, steps=max(keep.values()), ema_decay=EMA_DECAY)
    models = gan.build_models(config)
    kept: dict[str, torch.nn.Module] = {}

    def snapshot(step, history):
        for name, at in keep.items():
            if step == at and name not in kept:
                kept[name] = copy.deepcopy(models[name]).eval()

    gan.train_gan(models, config, images=images, progress=False, callbacks=[(1, snapshot)])
    return kept


class Scorer:
    """bench/sample_quality.py's metrics for ``n`` samples of a generator (sample seed 0)."""

    def __init__(self, n: int = 1000, image_size: int = 32):
        self.n = n
        self.net = load_feature_net(image_size, config=FeatureNetConfig.for_profile(PROFILE, image_size=image_size))
        self.real = ToyFaces(split="test", size=n, image_size=image_size, seed=0).images
        self.real_feats = self.net.features(self.real)

    def __call__(self, generator: torch.nn.Module) -> dict[str, float]:
        images = gan.generate(generator, self.n, seed=0)
        return sample_quality(self.real, images, n=self.n, net=self.net, real_feats=self.real_feats,
                              scores=("frechet", "fidelity", "diversity"))


def run_key(recipe: str, seed: int) -> str:
    return f"{recipe} | seed {seed}"


def run_recipe(result: dict, recipe: str, seed: int, images, scorer, save) -> None:
    """Train one recipe at one seed (unless the results hold it) and score its rows."""
    key = run_key(recipe, seed)
    if key in result["runs"]:
        return
    keep = {"generator": result["budgets"][recipe]}
    keep["generator_ema"] = result["budgets"]["EMA"] if recipe == "baseline" else keep["generator"]
    start = time.perf_counter()
    kept = train_run(recipe_config(recipe, seed=seed), images, keep=keep)
    rows = {recipe: scorer(kept["generator"]),
            ("EMA" if recipe == "baseline" else f"{recipe} + EMA"): scorer(kept["generator_ema"])}
    result["runs"][key] = {"recipe": recipe, "seed": seed, "steps": keep, "rows": rows,
                           "seconds (loaded machine)": round(time.perf_counter() - start, 1)}
    print(f"{key}: " + "; ".join(f"{r} Frechet {v['frechet']:.1f} fidelity {v['fidelity']:.2f} "
                                 f"diversity {v['diversity']:.2f}" for r, v in rows.items()), flush=True)
    save()


def leaders(result: dict, count: int = 2) -> list[str]:
    """The ``count`` rows other than the baseline with the lowest seed-0 Frechet distance."""
    screen = {row: v["frechet"] for run in result["runs"].values() if run["seed"] == 0
              for row, v in run["rows"].items() if row != "baseline"}
    return sorted(screen, key=screen.get)[:count]


def verdicts(result: dict) -> dict[str, dict]:
    """Chapter 03b's family on the Frechet distance (:func:`course_lib.gan_report.recipe_family`):
    ``"X vs baseline"`` (Welch) for every recipe row with several seeds, ``"EMA on X"`` (paired by
    seed: the same runs) for every EMA row against the row it averages; Holm over the family."""
    return {key: dataclasses.asdict(c) for key, c in recipe_family(result).items()}


def better_rows(result: dict) -> list[str]:
    """The rows the verdicts find clearly better than the baseline: ``"X vs baseline"`` -> X,
    ``"EMA on baseline"`` -> "EMA" (an "EMA on X" verdict compares with X, not the baseline)."""
    rows = {f"{row} vs baseline": row for row in {r for run in result["runs"].values() for r in run["rows"]}}
    rows["EMA on baseline"] = "EMA"
    return [rows[k] for k, c in result["verdicts"].items() if c["verdict"] == "better" and k in rows]


def winner(result: dict) -> str:
    """The row with the lowest mean Frechet among those clearly better than the baseline
    (Holm-corrected, :func:`better_rows`); "baseline" when none is."""
    better = better_rows(result)
    return min(better, key=lambda r: statistics.mean(row_values(result, r, "frechet"))) if better else "baseline"


def format_table(result: dict) -> str:
    lines = [f"GAN recipes at equal wall time: chapter 03's DCGAN budget of {result['base_steps']} "
             f"discriminator steps, {result['frechet_label']}",
             f"ToyFaces render version {result['render_version']}; {result['command']}",
             *[f"  runs from: {c}" for c in result.get("commands", [])],
             f"timing: CPU time per step, {result['timing']['rounds']} interleaved rounds, 1-min load "
             f"{result['timing']['load_average_1min']} at the start" if "timing" in result else "timing: -",
             f"{'row':>22} {'step cost':>9} {'D steps':>8} {'Frechet':>16} {'fidelity':>12} {'diversity':>12} seeds"]
    names = list(dict.fromkeys(row for run in result["runs"].values() for row in run["rows"]))
    for row in sorted(names, key=lambda r: statistics.mean(row_values(result, r, "frechet"))):
        recipe = row_recipe(row) if row != "EMA" else "EMA"
        cells = []
        for m in METRICS:
            v = row_values(result, row, m)
            spread = f" +/- {statistics.stdev(v):4.2f}" if len(v) > 1 and m != "frechet" else ""
            spread = f" +/- {statistics.stdev(v):5.1f}" if len(v) > 1 and m == "frechet" else spread
            cells.append(f"{statistics.mean(v):.1f}{spread}" if m == "frechet" else f"{statistics.mean(v):.2f}{spread}")
        lines.append(f"{row:>22} {result['cost_ratios'][recipe]:9.2f} {result['budgets'][recipe]:8d} "
                     f"{cells[0]:>16} {cells[1]:>12} {cells[2]:>12} {len(row_values(result, row, 'frechet'))}")
    for key, c in result.get("verdicts", {}).items():
        test = "paired by seed" if key.startswith("EMA on ") else "Welch"
        lines.append(f"{key} ({c['n_a']} seeds, {test}, Holm): Frechet {c['diff']:+.1f} "
                     f"[{c['low']:+.1f}, {c['high']:+.1f}], p_adj {c['p_adjusted']:.3f} -> {c['verdict']}")
    if "winner" in result:
        lines.append(f"winner: {result['winner']} (the lowest mean Frechet among rows clearly better than the "
                     f"baseline after Holm's correction; 'baseline' when none is)"
                     + ("" if result.get("complete") else "; INCOMPLETE: not every leader has 3 seeds"))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-steps", type=int, default=500, help="the baseline's discriminator steps")
    parser.add_argument("--json", type=Path, default=result_path("gan_recipes"),
                        help="the results (read back to resume)")
    parser.add_argument("--txt", type=Path, default=ROOT / "bench" / "results" / "gan_recipes.txt", help="the table")
    parser.add_argument("--n", type=int, default=1000, help="samples and real images per score")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds")
    parser.add_argument("--recipes", nargs="*", default=TRAINED, help="subset to run (tests)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the leaders (1 = screen only)")
    parser.add_argument("--report", action="store_true", help="only rewrite the table (and the verdicts) from --json")
    parser.add_argument("--worker", default="0/1", help="I/N: run only every N-th planned run from the I-th "
                        "(two processes on copies of one timed JSON, then --merge)")
    parser.add_argument("--merge", nargs="*", type=Path, default=[], help="add the runs of these JSON files "
                        "(same timing and budgets) to the first, write --json and --txt")
    parser.add_argument("--runs", nargs="*", default=None, help="run exactly these 'RECIPE:SEED' runs (a worker "
                        "that is free before the screen is merged)")
    args = parser.parse_args(argv)
    worker, workers = (int(x) for x in args.worker.split("/"))
    if not 0 <= worker < workers:
        parser.error(f"--worker must be I/N with 0 <= I < N, got {args.worker}")
    if args.base_steps < 1 or args.n < 10:
        parser.error("--base-steps must be >= 1 and --n >= 10")
    torch.set_num_threads(1)
    path = args.json
    if args.report or args.merge:
        sources = args.merge or [path]
        if not all(p.is_file() for p in sources):
            parser.error(f"--report and --merge need {[str(p) for p in sources]}: run the study first")
        result = json.loads(sources[0].read_text())
        for other in map(lambda p: json.loads(p.read_text()), sources[1:]):
            if (other["budgets"], other["base_steps"]) != (result["budgets"], result["base_steps"]):
                parser.error("--merge: the files were timed separately (budgets differ)")
            result["runs"].update(other["runs"])
        if args.merge:
            result["commands"] = [json.loads(p.read_text())["command"] for p in sources]
            result["command"] = "python bench/gan_recipes.py " + " ".join(argv if argv is not None else os.sys.argv[1:])
        return report(result, path, args.txt)
    base = gan.GANConfig.for_profile(PROFILE)
    images = ToyFaces(split="train", size=base.train_size, image_size=base.image_size).images
    result = json.loads(path.read_text()) if path.is_file() else {}
    configs = {name: recipe_config(name) for name in ["baseline", "EMA", *[r for r in args.recipes if r != "baseline"]]}
    if result.get("base_steps") != args.base_steps or result.get("render_version") != RENDER_VERSION:
        load = os.getloadavg()[0]
        seconds = time_steps(configs, images, rounds=args.rounds)
        result = {"base_steps": args.base_steps, "render_version": RENDER_VERSION, "n": args.n,
                  "frechet_label": frechet_label(args.n, base.image_size),
                  "configs": {k: dataclasses.asdict(c) for k, c in configs.items()},
                  "timing": {"load_average_1min": round(load, 2), "rounds": args.rounds, "calls_per_round": 5,
                             "cpu_seconds_per_step (one thread, a loaded machine: not a claim)": seconds},
                  "cost_ratios": {k: round(t / seconds["baseline"], 3) for k, t in seconds.items()},
                  "budgets": budgets(seconds, configs, args.base_steps), "runs": {}}
    result["command"] = "python bench/gan_recipes.py " + " ".join(argv if argv is not None else os.sys.argv[1:])

    def save():
        write_result(path, result)

    save()
    print("cost ratios:", result["cost_ratios"], "\nbudgets:", result["budgets"], flush=True)
    scorer = Scorer(args.n, base.image_size)
    plan = [(recipe, 0) for recipe in ["baseline", *[r for r in args.recipes if r != "baseline"]]]
    if all(run_key(*run) in result["runs"] for run in plan):   # the screen is done: the leaders' seeds
        plan += [(recipe, seed) for seed in range(1, args.seeds)
                 for recipe in dict.fromkeys(["baseline", *map(row_recipe, leaders(result))])]
    if args.runs is not None:
        plan = [(r.rsplit(":", 1)[0], int(r.rsplit(":", 1)[1])) for r in args.runs]
        if any(recipe not in result["budgets"] or recipe == "EMA" for recipe, _ in plan):
            parser.error(f"--runs: each must be RECIPE:SEED with a timed recipe, got {args.runs}")
    for i, (recipe, seed) in enumerate(plan):
        if i % workers == worker:
            run_recipe(result, recipe, seed, images, scorer, save)
    screen = len(plan) == len(args.recipes) + ("baseline" not in args.recipes)  # one run per recipe
    if args.runs is None and workers == 1 and screen and args.seeds > 1:
        return main(argv)                                      # screen just finished: plan the seeds
    report(result, path, args.txt)


def report(result: dict, json_path: Path, txt_path: Path) -> None:
    """Leaders, verdicts and winner from the runs so far; rewrite both files and print the table."""
    result["leaders"] = leaders(result)
    result["verdicts"] = verdicts(result)
    result["winner"] = winner(result)
    result["complete"] = all(len(row_values(result, row, "frechet")) >= 3 for row in ["baseline", *result["leaders"]])
    write_result(json_path, result)
    write_result(txt_path, format_table(result))
    print(format_table(result))


if __name__ == "__main__":
    main()
