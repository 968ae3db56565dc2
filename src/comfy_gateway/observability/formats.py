"""The original middleware's number formats: whole numbers without a decimal point, rounding half up,
percent strings ("98.50%", "50%"), epoch milliseconds. Every JSON body that promises them uses these."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def num(value: float, digits: int = 2) -> int | float:
    """`value` rounded half up on its exact binary value (as JavaScript does); a whole result is an int,
    so 3.0 is sent as `3`, never `3.0`."""
    rounded = Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def whole(value: float) -> int | float:
    """An unrounded figure as the original sends it: an int when it has no fraction."""
    return int(value) if float(value).is_integer() else float(value)


def pct2(part: float, whole_: float) -> str:
    """"98.50%": exactly two decimals; "0%" when there is nothing to divide by."""
    if not whole_:
        return "0%"
    rounded = Decimal(part / whole_ * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{rounded}%"


def pct_n(part: float, whole_: float) -> str:
    """"50%", "1.5%": two decimals at most, trailing zeros dropped; "0%" when there is nothing to divide by."""
    return f"{num(part / whole_ * 100, 2)}%" if whole_ else "0%"


def epoch_ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else int(epoch_s * 1000)
