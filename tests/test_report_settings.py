"""A model's ``report_settings`` (protocol): copied into the report's settings; the checker's own keys win; a
value JSON cannot write, or a non-dict, is a ProtocolError naming it."""

import json

import numpy as np
import pytest

from gradcheck import ProtocolError, check


class Recording:
    def __init__(self, settings):
        self.report_settings = settings
        self.w = np.array([0.5, -1.0, 2.0])

    def parameters(self):
        return {"w": self.w}

    def loss(self, params, taps=None):
        return float(np.sum(np.sin(params["w"])))

    def gradients(self, params):
        return {"w": np.cos(params["w"])}, {}


def test_the_models_settings_reach_the_report_and_its_json():
    report = check(Recording({"adapter": {"promoted_from": "float32", "seed": 3}}))
    assert report.settings["adapter"] == {"promoted_from": "float32", "seed": 3}
    assert json.loads(json.dumps(report.to_dict()))["settings"]["adapter"]["seed"] == 3


def test_the_checkers_own_keys_win():
    report = check(Recording({"method": "mine", "rtol": "mine"}))
    assert report.settings["method"] == "central" and report.settings["rtol"] == 1e-6


def test_a_model_without_report_settings_adds_nothing():
    plain = Recording(None)
    del plain.report_settings
    assert set(check(plain).settings) == set(check(Recording({})).settings)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"x": np.float32}, "JSON-serialisable"),
        (["a"], "must be a dict with string keys, got list"),
        ({1: "a"}, "must be a dict with string keys"),
    ],
)
def test_bad_report_settings_are_a_protocol_error(bad, message):
    with pytest.raises(ProtocolError, match=message):
        check(Recording(bad))
