"""Does training on the test's own hole shape matter? Chapter 04's cpu config (800 steps)
trained on one mask kind instead of the mixture, scored on the five test masks.

    python experiments/inpainting_mask_mix.py

Prints the mean hole PSNR (dB) over mask seeds 7, 8, 9 on 500 test faces, per test mask, for
a network trained only on centre blocks (coverage 0.25) and one trained only on random blocks
(coverage 0.25-0.40); compare with ``summary_live`` in course_lib/results_data/inpainting.json
(the mixture, same budget). One thread; about 2 x 800 steps.
"""
import dataclasses

import torch

from course_lib.images import to_float
from course_lib.inpainting import InpaintConfig, train_inpainter
from course_lib.inpainting_eval import fillers, hole_psnr_by_seed
from course_lib.toyfaces import ToyFaces

if __name__ == "__main__":
    torch.set_num_threads(1)
    x = to_float(ToyFaces(split="test", size=500, image_size=32).images)
    for kinds, cov in [(("center",), (0.25, 0.25)), (("blocks",), (0.25, 0.4))]:
        cfg = dataclasses.replace(InpaintConfig.for_profile("cpu"), steps=800, mask_kinds=kinds, coverage=cov)
        model = cfg.build()
        train_inpainter(model, cfg, progress=False)
        got = hole_psnr_by_seed({"net": fillers(model)["net"]}, x, seeds=[7, 8, 9])
        print(kinds[0], {k: round(sum(v["net"]) / 3, 2) for k, v in got.items()}, flush=True)
