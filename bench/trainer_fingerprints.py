"""Fingerprints of every trainer's result (weights + loss history) at smoke sizes.

A refactor of the training code that must not change results (the one training loop, the
trainer scaffold) is checked by running this before and after and comparing:

    COURSE_PROFILE=smoke python bench/trainer_fingerprints.py > before.json
    ... change the code ...
    COURSE_PROFILE=smoke python bench/trainer_fingerprints.py | diff before.json -

``bench/results/trainer_fingerprints.json`` is the output on this project's 2-core CPU
(torch 2.14.1, fp32, one thread) from before the engine rewrite; the code after it gives
the same file. Other CPUs or torch versions may differ in the last bits: compare runs on
one machine, not against the committed file.
"""
import hashlib
import json
from dataclasses import replace

import torch

torch.set_num_threads(1)  # one thread, as the committed fingerprints were made; set before course_lib loads
from course_lib import applications, fusion, gan, inpainting, playground, pretext, vae
from course_lib.loop import Budget, train
from course_lib.runtime import DeviceLoader
from course_lib.toyfaces import ATTRIBUTES, ToyFaces


def h(obj):
    m = hashlib.sha256()
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in sorted(obj): m.update(k.encode()); m.update(obj[k].detach().cpu().numpy().tobytes())
    else:
        m.update(json.dumps(obj, sort_keys=True, default=float).encode())
    return m.hexdigest()[:16]

def recs(hist):
    r = getattr(hist, "records", hist)
    return [{k: round(float(v), 6) for k, v in d.items() if k not in ("time", "step")} for d in r]

out = {}
imgs = ToyFaces(split="train", size=96, image_size=16).images
ds = ToyFaces(split="train", size=96, image_size=32)
# vae
cfg = vae.VAEConfig.for_profile("smoke"); torch.manual_seed(0); m = cfg.build()
hist = vae.train_vae(m, replace(cfg, steps=12), progress=False); out["vae"] = [h(m), h(recs(hist))]
# gan
gcfg = gan.GANConfig.for_profile("smoke"); torch.manual_seed(0); G, D = gan.build(gcfg)
og, od = gan.make_optimizers(G, D, gcfg)
gi = ToyFaces(split="train", size=64, image_size=gcfg.image_size).images
hist = train(gan.make_step(G, D, og, od, gcfg), DeviceLoader(gi, batch_size=16, seed=0), budget=Budget(steps=6),
             progress=False)
out["gan"] = [h(G), h(D), h(recs(hist))]
for loss in ("wgan-gp", "wgan-clip"):
    c2 = replace(gcfg, loss=loss); torch.manual_seed(0); G, D = gan.build(c2); og, od = gan.make_optimizers(G, D, c2)
    hist = train(gan.make_step(G, D, og, od, c2), DeviceLoader(gi, batch_size=16, seed=0), budget=Budget(steps=6),
                 progress=False)
    out["gan_" + loss] = [h(G), h(D), h(recs(hist))]
# inpainting
icfg = inpainting.InpaintConfig.for_profile("smoke"); torch.manual_seed(0); m = icfg.build()
hist = inpainting.train_inpainter(m, icfg, images=imgs, progress=False); out["inpaint"] = [h(m), h(recs(hist))]
# pretext
jc = pretext.JigsawConfig.for_profile("smoke"); torch.manual_seed(0); m = jc.build()
hist = pretext.train_jigsaw(m, jc, progress=False); out["jigsaw"] = [h(m), h(recs(hist))]
rc = pretext.RotationConfig.for_profile("smoke"); torch.manual_seed(0); m = rc.build()
hist = pretext.train_rotation(m, rc, progress=False); out["rotation"] = [h(m), h(recs(hist))]
torch.manual_seed(0); m = pretext.BackboneClassifier(num_classes=tuple(a.num_classes for a in ATTRIBUTES))
hist = pretext.train_supervised(m, rc, progress=False); out["supervised"] = [h(m), h(recs(hist))]
# fusion
fc = fusion.FusionConfig.for_profile("smoke")
pre = fusion.pretrain_inpainter(imgs, fc, seed=1); out["fusion_pre"] = h(pre)
for v in fusion.VARIANTS:
    model, logs = fusion.train_variant(v, imgs, fc, seed=2, pretrained=pre)
    out["fusion_" + v] = [h(model), h(recs(logs))]
# applications
ac = applications.AugmentConfig.for_profile("smoke")
m = applications.train_attribute_classifier(ds.images[:48], ds.labels[:48], ac, seed=3)
out["attr"] = h(m)
# playground
for p in ("collapse", "wgan-gp"):
    pc = playground.PlaygroundConfig(**{**playground.PRESETS[p], "g_steps": 30, "snapshots": 3, "eval_points": 200,
                                        "grid": 16})
    run = playground.run_playground(pc)
    curves = {k: [round(x, 6) for x in v] for k, v in ((k, run.history[k]) for k in run.history.keys())}
    out["play_" + p] = [h(curves), h([s.points.tolist() for s in run.snapshots]), [s.modes for s in run.snapshots]]
print(json.dumps(out, indent=1))
