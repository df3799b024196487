"""course_lib: the tested library behind "Generating Images Without Labels".

Modules, one concept each, one line each (import them directly, e.g. ``from course_lib import
vae``); ``tests/test_imports.py`` checks that this map names every module.

Data
- ``toyfaces``          the built-in procedural face data set (attributes, splits, caching)
- ``faceattributes``    ToyFaces' attribute table and its deterministic sampling
- ``facedraw``          ToyFaces' drawing: attributes to images, and its render version
- ``datasets``          real data (CelebA, an image folder) behind the same interface
- ``images``            ``to_float``: uint8 images to float in [0, 1], and back
- ``inputs``            checks on what users pass in (images, masks, config fields)
- ``masks``             inpainting masks: which pixels the model must fill in
- ``tiles``             jigsaw tiles and permutation sets

Models, one family per module (chapter in brackets)
- ``backbone``          the shared conv backbone (the article's encoder convs)
- ``unsupervised``      PCA, a linear autoencoder, cluster purity (01)
- ``vae``               the variational autoencoder (02)
- ``gan``               GANs: DCGAN, WGAN, WGAN-GP, their training and sampling (03)
- ``gan_models``        the GAN's generator and discriminator networks (03)
- ``gan_losses``        the GAN variants' losses and penalties (03)
- ``gan_reference``     chapter 03's committed reference generators
- ``gan_report``        chapters 03 and 03b's measurements in words
- ``playground``        the 2-D GAN playground (03)
- ``inpainting``        inpainting as a pretext task (04)
- ``inpainting_eval``   chapter 04's scoring and its committed reference network
- ``jigsaw``            jigsaw puzzles on the shared backbone (05)
- ``pretext``           rotation and the other pretext tasks, their training and probes (05)
- ``contrastive``       SimCLR on the shared backbone (05)
- ``contrastive_report`` chapter 05's SimCLR augmentation ablation in words
- ``shortcuts``         pretext tasks solved without looking at the object (05)
- ``fusion``            a generative model fused with a self-supervised task (06)
- ``fusion_reasked``    the fusion re-asked: Bernoulli floor, registered verdicts (06)
- ``ssgan``             a GAN whose discriminator also predicts rotations (06)
- ``ssgan_results``     chapter 06's committed SS-GAN experiment in words
- ``applications``      the course's models put to work: anomalies, editing, augmentation (07)
- ``diffusion``         denoising diffusion: the model, its training and profiles (08)
- ``diffusion_process`` noise schedules, the forward process and the loss (08)
- ``diffusion_unet``    the time-conditioned U-Net, its moving average, attribute conditioning (08)
- ``diffusion_sampling`` DDPM, DDIM and RePaint sampling (08)
- ``diffusion_report``  chapter 08's measurements in words
- ``flow``              flow matching on the same U-Net (09)
- ``flow_toy``          flow matching in two dimensions, and reflow (09)
- ``flow_report``       chapter 09's capacity study (a wider U-Net, a longer average) in words (09)
- ``guidance``          classifier-free guidance on ToyFaces' attributes (10)
- ``guidance_report``   chapter 10's guidance sweep in words
- ``latent``            an autoencoder and a flow model in its latent space (11)
- ``ssl_flow``          the flow model helped by self-supervision (12)
- ``rcg``               representation-conditioned generation: a generator of SSL vectors (12)
- ``ssl_report``        chapter 12's second round (conditioning, on coverage) in words

Training
- ``profiles``          COURSE_PROFILE (smoke / cpu / gpu) and per-profile choices
- ``device``            which device: CUDA, then MPS, then CPU
- ``runtime``           the runtime plan (precision, memory layout), the optimizer step, seeding
- ``distributed``       several processes under torchrun: ranks, global batches, gradients
- ``loader``            ``DeviceLoader``: shuffled batches sliced on the device
- ``loop``              the one training loop
- ``trainer``           the trainers' shared set-up (``fit``) and model recipes
- ``registry``          the trained models by name (``pretrained(name)``)
- ``history``           the one training-history format
- ``train``             the command-line trainer

Files
- ``atomic``            atomic writes, and the temporary files of killed ones
- ``checkpoint``        checkpoints and the model cache (``load_or_train``)
- ``cache``             the cache folder, its naming rule and the data cache
- ``artifacts``         reference weights, snapshots and result files: one writer, one reader each
- ``results``           the committed experiment results (package data), ``load_result(name)``
- ``quality_ranking``   who leads the sample-quality table, and which ranks are real

Evaluation
- ``feature_net``       the ToyFaces attribute network: the metrics' feature space
- ``metrics``           sample quality, PSNR, SSIM in that feature space and on pixels
- ``probe``             the one linear-probe protocol
- ``stats``             Welch's and paired t-tests, intervals, Holm's correction, power
- ``verdicts``          the experiments' verdicts built on ``stats`` (06, 07)
- ``plots``             a batch of images as one grid
- ``checkers``          exercise checkers, one module per chapter

The authoring tools (``scripts.release``: chapters/ from solutions/; ``scripts.nbgrader_course``;
``scripts.lock``: constraints.txt) live outside the package, in ``scripts/``: a student's install
never needs them.
"""
__version__ = "0.1.0"
