"""The fast JSON encoder answers for every value the standard one takes, as the same JSON."""

from __future__ import annotations

import json

from comfy_gateway import fast_json


def test_what_orjson_refuses_goes_the_standard_way() -> None:
    for value in ({"seed": 2**70}, {1: "a key that is not a string"}):
        assert json.loads(fast_json.dumps(value)) == json.loads(json.dumps(value))


def test_a_prompt_and_a_log_line_encode_as_the_same_json() -> None:
    prompt = {"prompt": {"8": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": "iVBOR" * 1000}}},
              "extra_data": {"attempt": 1}}
    assert json.loads(fast_json.dumps(prompt)) == prompt
    assert json.loads(fast_json.dumps({"at": object}, default=str)) == {"at": str(object)}
