"""course_lib.guidance_report: the sweep's sentence where guidance helps, where it starts to
cost, and where the model never learned its condition."""
from course_lib.guidance_report import guidance_findings

SWEEP = [{"scale": 0.0, "agreement": 0.37, "frechet": 155.0, "fidelity": 1.12, "diversity": 0.83},
         {"scale": 1.0, "agreement": 0.92, "frechet": 110.0, "fidelity": 1.43, "diversity": 0.99},
         {"scale": 2.0, "agreement": 0.97, "frechet": 127.0, "fidelity": 1.12, "diversity": 0.99},
         {"scale": 4.0, "agreement": 0.96, "frechet": 272.0, "fidelity": 0.60, "diversity": 0.90}]
REAL = {"frechet": 40.0, "fidelity": 1.0, "diversity": 0.97}


def test_guidance_findings_say_where_guidance_starts_to_cost():
    text = guidance_findings(SWEEP, real=REAL)
    assert text.startswith("Read-back climbs from 37% at w = 0 (the unguided floor) to 97% at w = 2.")
    assert "lowest at w = 1 (110; real faces 40)" in text and "nearest the real faces' 1.00 at w = 0 (1.12)" in text
    assert "At w = 4 read-back is no higher than at w = 2 and the Frechet distance, the fidelity and the diversity" \
           " are worse" in text
    better_top = SWEEP[:3] + [{**SWEEP[3], "agreement": 0.99, "frechet": 100.0, "fidelity": 1.0}]
    assert "has not yet turned against the samples" in guidance_findings(better_top, real=REAL)
    flat = [{**r, "agreement": 0.40} for r in SWEEP]
    text = guidance_findings(flat, real=REAL)
    assert "stays near the unguided floor" in text and "only costs" not in text
