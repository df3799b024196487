"""course_lib: the tested library behind "Generating Images Without Labels".

Modules, one concept each (import them directly, e.g. ``from course_lib import vae``):

- ``profiles``   COURSE_PROFILE (smoke / cpu / gpu) and per-profile choices
- ``runtime``    device, precision, seeding, on-device batch loader
- ``toyfaces``   the built-in procedural face data set (``faceattributes``: its attribute
  table and sampling, ``facedraw``: the drawing); ``datasets`` real data
- ``images``     ``to_float``: uint8 images to float in [0, 1]; ``plots``: ``show_images``, a batch as one grid
- ``masks``, ``tiles``  inpainting masks, jigsaw tiles and permutations
- ``backbone``   the shared conv backbone (the article's encoder convs)
- ``vae``, ``gan``, ``playground``, ``inpainting``, ``jigsaw``, ``pretext``, ``fusion``  model families
- ``loop``, ``checkpoint``, ``metrics``, ``feature_net``  training and evaluation; ``history``
  the one training-history format (``History``: what ``loop.train`` and ``load_or_train`` return)
- ``results``    the committed experiment results (package data), ``load_result(name)``
- ``stats``      Welch's t-test, confidence intervals, Holm's correction; ``verdicts``
  the experiments' verdicts built on it (chapters 06 and 07)
- ``checkers``   exercise checkers, one module per chapter

The authoring tools (``scripts.release``: chapters/ from solutions/; ``scripts.nbgrader_course``)
live outside the package, in ``scripts/``: a student's install never needs them.
"""
__version__ = "0.1.0"
