import math

import pytest

from animesion_lib.verdicts import Arm, compare, mean_and_se, paired_difference, plateaued

THUMB = ("8×8 thumbnail LR", 0.675)


def arm(name, scores, baseline=THUMB, plateau=True):
    return Arm(name, dict(enumerate(scores)), baseline=baseline, plateau=plateau)


def test_mean_and_se_match_hand_computation():
    mean, se = mean_and_se([0.01, 0.03, 0.02])
    assert mean == pytest.approx(0.02)
    assert se == pytest.approx(0.01 / math.sqrt(3))  # sample std 0.01
    assert math.isnan(mean_and_se([0.5])[1])


def test_paired_difference_uses_only_common_seeds():
    diff, se, n = paired_difference({0: 0.7, 1: 0.8, 5: 0.1}, {0: 0.6, 1: 0.6, 2: 0.9})
    assert n == 2
    assert diff == pytest.approx(0.15)
    assert se == pytest.approx(0.05)


def test_a_paired_gain_beyond_two_standard_errors_is_claimed():
    v = compare(arm("IFA", [0.71, 0.74, 0.72]), arm("[CLS]", [0.70, 0.71, 0.70]))
    assert v.status == "better"
    assert v.difference == pytest.approx(0.02)
    assert v.text == "IFA beats [CLS] by +2.0 points (± 0.6 SE, 3 paired seeds)"


def test_a_gain_within_noise_is_no_effect():
    v = compare(arm("IFA", [0.74, 0.70, 0.73]), arm("[CLS]", [0.70, 0.72, 0.71]))
    assert v.status == "no effect"
    assert v.text.startswith("IFA and [CLS] do not differ beyond seed noise")


def test_paired_not_pooled_noise_decides():
    # the seeds move both arms together: pooled spreads overlap, the paired gain is steady
    a = arm("A", [0.70, 0.80, 0.90])
    b = arm("B", [0.69, 0.79, 0.89])
    assert compare(a, b).status == "better"
    assert compare(b, a).status == "worse"


def test_below_baseline_is_inconclusive_and_names_the_baseline():
    v = compare(arm("IFA", [0.60, 0.61, 0.62]), arm("[CLS]", [0.70, 0.71, 0.70]))
    assert v.status == "inconclusive"
    assert v.reasons == ("IFA (61.0%) is below 8×8 thumbnail LR (67.5%)",)
    assert not v.conclusive


def test_every_baseline_of_a_multimodal_arm_counts():
    twin = ("its image-only twin", 0.75)
    vilt = arm("ViLT", [0.74, 0.73, 0.74], baseline=[("tags LR", 0.648), twin])
    v = compare(vilt, arm("ViT", [0.70, 0.71, 0.70]))
    assert v.reasons == ("ViLT (73.7%) is below its image-only twin (75.0%)",)


def test_too_few_seeds_or_no_plateau_is_inconclusive():
    v = compare(arm("A", [0.80, 0.81]), arm("B", [0.70, 0.71]))
    assert v.reasons == ("2 paired seeds, fewer than 3",)
    v = compare(arm("A", [0.80, 0.81, 0.82], plateau=False), arm("B", [0.70, 0.71, 0.72], plateau=None))
    assert v.reasons == ("A's validation curve had not levelled off", "B's validation curve had not levelled off")


@pytest.mark.parametrize("curve, expected", [
    ([0.2, 0.4, 0.5, 0.55, 0.6, 0.605, 0.607, 0.608, 0.609, 0.609], True),   # last fifth gains 0.4 points
    ([0.2, 0.4, 0.5, 0.55, 0.6, 0.62, 0.64, 0.66, 0.68, 0.70], False),      # still rising
    ([0.5, 0.6, 0.7, 0.71], False),                                          # too short to tell
    ([0.5, 0.6, 0.7, 0.70, 0.69, 0.68], True),                               # over-fitting also levelled off
    ([0.3, 0.5, 0.6, 0.65, 0.68, 0.70, 0.71, 0.72, 0.72, 0.733], True),     # one lucky last epoch: mean +0.4
    ([0.3, 0.5, 0.6, 0.65, 0.68, 0.70, 0.71, 0.72, 0.735, 0.74], False),    # the whole tail higher: +1.75
])
def test_plateau_rule(curve, expected):
    assert plateaued(curve) is expected


def test_verdicts_are_recorded_for_the_reproduction_report(tmp_path):
    import json

    from animesion_lib.verdicts import record_verdicts

    v = {"ifa vs cls": compare(arm("IFA", [0.71, 0.74, 0.72]), arm("[CLS]", [0.70, 0.71, 0.70])),
         "one seed": compare(arm("A", [0.8]), arm("B", [0.7]))}
    path = record_verdicts(v, experiment="recognition-verdicts", profile="cpu", results_dir=str(tmp_path))
    record = json.loads(open(path).read())
    assert record["kind"] == "verdicts"
    assert record["verdicts"]["ifa vs cls"] == {"status": "better", "seeds": 3, "reasons": [],
                                                "text": "IFA beats [CLS] by +2.0 points (± 0.6 SE, 3 paired seeds)"}
    assert record["metrics"]["ifa vs cls.difference"] == pytest.approx(0.02)
    assert record["metrics"]["one seed.standard_error"] is None


def test_a_tiny_standard_error_is_printed_with_two_decimals():
    a, b = arm("ASL", [0.117, 0.1175, 0.1168], baseline=None), arm("BCE", [0.114, 0.1144, 0.1139], baseline=None)
    assert compare(a, b).text == "ASL beats BCE by +0.30 points (± 0.01 SE, 3 paired seeds)"
