# Setup. On Google Colab: install course_lib from the course repository and pick the
# profile (gpu when a GPU is attached). Anywhere else (laptop, JupyterHub, CI) it does nothing.
import os
import sys

if "google.colab" in sys.modules:
    import subprocess

    COURSE_REPO = "https://github.com/generating-images-without-labels/course"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"course-lib @ git+{COURSE_REPO}"], check=True)
    import torch

    if torch.cuda.is_available():
        os.environ.setdefault("COURSE_PROFILE", "gpu")
    else:
        os.environ.setdefault("COURSE_PROFILE", "cpu")
        print("No GPU attached: this chapter runs with the small 'cpu' profile. For full-size results "
              "choose Runtime > Change runtime type > GPU, then run the notebook again from the top.")
