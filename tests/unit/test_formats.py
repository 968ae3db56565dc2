"""The original's number formats: no decimal point on whole numbers, half-up rounding, percent strings."""

from __future__ import annotations

import json

import pytest

from comfy_gateway.observability.formats import epoch_ms, num, pct2, pct_n, whole


@pytest.mark.parametrize(("value", "digits", "sent"), [
    (3.0, 2, "3"), (2.50, 2, "2.5"), (0.125, 2, "0.13"), (0.0, 2, "0"), (1 / 3, 3, "0.333"), (100, 2, "100"),
])
def test_num_rounds_half_up_and_sends_whole_numbers_as_integers(value, digits, sent):
    assert json.dumps(num(value, digits)) == sent


def test_whole_keeps_fractions_and_drops_the_point_of_integers():
    assert (json.dumps(whole(1500.0)), whole(2.25)) == ("1500", 2.25)


@pytest.mark.parametrize(("part", "total", "two", "trimmed"), [
    (0, 0, "0%", "0%"), (1, 1, "100.00%", "100%"), (1, 2, "50.00%", "50%"), (3, 200, "1.50%", "1.5%"),
    (1, 3, "33.33%", "33.33%"), (1, 8, "12.50%", "12.5%"),
])
def test_percent_strings(part, total, two, trimmed):
    assert (pct2(part, total), pct_n(part, total)) == (two, trimmed)


def test_epoch_ms_is_an_integer_count_of_milliseconds():
    assert (epoch_ms(1_796_115_070.0439), epoch_ms(None)) == (1_796_115_070_043, None)
