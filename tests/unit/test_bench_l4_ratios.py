"""bench/l4_connrate.py's ratios to direct: paired within a round, so drift between rounds
does not pass into them."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import l4_connrate  # noqa: E402 - after the path fix


def test_a_path_as_fast_as_direct_in_every_round_is_1_however_the_machine_drifts():
    # the machine doubles its speed between rounds; the VIP keeps pace with direct each time
    results = {"direct": [4000, 8000, 16000], "direct-4": [4000, 8000, 16000],
               "proactive": [4000, 8000, 16000]}
    paired = {"proactive": [1.0, 1.0, 1.0]}
    ratios, of_medians = l4_connrate.rate_ratios(results, paired)
    assert ratios["proactive"] == 1.0 and of_medians["proactive"] == 1.0
    # a path measured only in the slow round looks slow against the median direct, not paired
    results["l4"], paired["l4"] = [3600], [0.9]
    ratios, of_medians = l4_connrate.rate_ratios(results, paired)
    assert ratios["l4"] == pytest.approx(0.9)
    assert of_medians["l4"] == pytest.approx(3600 / 8000)


def test_the_paired_ratio_is_the_median_over_rounds_and_baselines_fall_back_to_medians():
    results = {"direct": [10, 20, 30], "direct-4": [9, 9, 9], "l4": [5, 12, 12]}
    ratios, of_medians = l4_connrate.rate_ratios(results, {"l4": [0.5, None, 0.4, 0.6]})
    assert ratios["l4"] == pytest.approx(0.5)
    assert ratios["direct"] == 1.0 and ratios["direct-4"] == pytest.approx(9 / 20)
    assert of_medians["l4"] == pytest.approx(12 / 20)
