# Setup. On Google Colab: install course_lib from the course repository and pick the
# profile (gpu when a GPU is attached). Anywhere else (laptop, JupyterHub, CI) it does nothing.
import os
import sys

if "google.colab" in sys.modules:
    import re
    import subprocess
    import urllib.request
    from importlib import metadata

    COURSE_REPO = "https://github.com/generating-images-without-labels/course"
    # The versions the course was tested with (constraints.txt) for what pip adds; Colab's own
    # torch, numpy and friends stay as they are.
    url = COURSE_REPO.replace("github.com", "raw.githubusercontent.com") + "/main/constraints.txt"
    have = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in metadata.distributions()}
    pins = [line for line in urllib.request.urlopen(url).read().decode().splitlines()
            if "==" in line and line.split("==")[0] not in have]
    with open("course-constraints.txt", "w") as f:
        f.write("\n".join(pins) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", "course-constraints.txt",
                    f"course-lib @ git+{COURSE_REPO}"], check=True)
    import torch

    if torch.cuda.is_available():
        os.environ.setdefault("COURSE_PROFILE", "gpu")
    else:
        os.environ.setdefault("COURSE_PROFILE", "cpu")
        print("No GPU attached: this chapter runs with the small 'cpu' profile. For full-size results "
              "choose Runtime > Change runtime type > GPU, then run the notebook again from the top.")
