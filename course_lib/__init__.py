"""course_lib: the tested library behind "Generating Images Without Labels".

Modules, one concept each (import them directly, e.g. ``from course_lib import vae``);
``tests/test_imports.py`` checks that this map names every module.

Data
- ``toyfaces``   the built-in procedural face data set (``faceattributes``: its attribute table
  and sampling, ``facedraw``: the drawing); ``datasets``: real data behind the same interface
- ``images``     ``to_float``: uint8 images to float in [0, 1]; ``inputs``: checks on what users pass in
- ``masks``, ``tiles``  inpainting masks, jigsaw tiles and permutations

Models, one family per module (chapter in brackets)
- ``backbone``   the shared conv backbone (the article's encoder convs)
- ``unsupervised`` PCA, K-Means, t-SNE (01); ``vae`` (02)
- ``gan`` (03), with ``gan_models`` (the networks), ``gan_losses`` and ``gan_reference`` (the
  committed reference generators); ``playground`` the 2-D GAN playground
- ``inpainting`` (04), with ``inpainting_eval`` (its scoring and reference network)
- ``jigsaw``, ``pretext``, ``contrastive`` (05); ``shortcuts`` pretext tasks solved without the object
- ``fusion``, ``ssgan`` (06), with ``ssgan_results`` (its committed experiment in words); ``applications`` (07)
- ``diffusion`` (08), with ``diffusion_process`` (schedules, forward process, loss),
  ``diffusion_unet`` (the time-conditioned U-Net, its moving average, attribute conditioning)
  and ``diffusion_sampling`` (DDPM, DDIM, RePaint); ``diffusion_report`` its measurements in words
- ``flow`` (09) flow matching on the same U-Net, ``flow_toy`` its 2-D version and reflow;
  ``guidance`` (10) classifier-free guidance on ToyFaces' attributes; ``latent`` (11) an
  autoencoder and a flow model in its latent space; ``ssl_flow`` (12) the flow model helped
  by self-supervision (representation alignment, the dispersive loss, clusters as labels)

Training and evaluation
- ``profiles``   COURSE_PROFILE (smoke / cpu / gpu) and per-profile choices
- ``runtime``    device, precision, seeding, distributed runs, the on-device batch loader
- ``loop``       the one training loop; ``trainer`` the trainers' shared set-up (``fit``) and
  model recipes; ``registry`` the trained models by name (``pretrained(name)``);
  ``history`` the one training-history format;
  ``checkpoint`` atomic files, checkpoints and the model cache; ``train`` the command-line trainer
- ``metrics``, ``feature_net``  sample quality and probes in the ToyFaces attribute network's
  feature space; ``probe`` the one linear-probe protocol
- ``stats``      Welch's and paired t-tests, confidence intervals, Holm's correction, power and
  seeds needed; ``verdicts`` the
  experiments' verdicts built on it (chapters 06 and 07)
- ``results``    the committed experiment results (package data), ``load_result(name)``;
  ``quality_ranking`` who leads the sample-quality table, and which ranks are real
- ``plots``      a batch of images as one grid
- ``checkers``   exercise checkers, one module per chapter

The authoring tools (``scripts.release``: chapters/ from solutions/; ``scripts.nbgrader_course``;
``scripts.lock``: constraints.txt) live outside the package, in ``scripts/``: a student's install
never needs them.
"""
__version__ = "0.1.0"
