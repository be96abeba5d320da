"""Optional unit handling with pint: "21900 m" against a gold of 21.9 km.

HiPhO ignores units (the rule check compares bare numbers), and so do we by default. With units switched on,
a response that carries a unit is converted to the gold's unit before the numbers are compared; a unit that
pint cannot read (``M_\\odot``) or a dimension mismatch falls back to the bare number, and the caller decides.
"""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=1)
def _registry():
    from lyceum.errors import require_extra

    pint = require_extra("pint", "olympiad")

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


_WORDS = {r"\Omega": "ohm", r"\AA": "angstrom", "years": "year", "yr": "year", "degrees": "degree",
          "rad": "radian", "°C": "degC", "°": "degree"}


def latex_unit_to_pint(text: str) -> str | None:
    """``\\mathrm{kg} \\cdot m^{2} / s`` -> ``kg * m**2 / s``; None for an empty unit."""
    s = text.strip().strip("$").strip(".")
    if not s:
        return None
    s = re.sub(r"\\(?:mathrm|text|rm|operatorname|mathit)\s*\{([^{}]*)\}", r" \1 ", s)
    s = s.replace(r"^{\circ}C", "°C").replace(r"^{\circ} C", "°C").replace(r"^{\circ}", "°").replace(r"^\circ", "°")
    s = s.replace(r"\mu ", "u").replace(r"\mu", "u").replace(r"\cdot", "*").replace(r"\times", "*")
    for a, b in _WORDS.items():
        s = re.sub(r"(?<![A-Za-z])" + re.escape(a) + r"(?![A-Za-z])", b, s)
    s = re.sub(r"\^\{?\s*([-+]?\d+(?:\.\d+)?)\s*\}?", r"**\1", s)
    s = s.replace("{", "(").replace("}", ")")
    s = re.sub(r"\s*\*\s*", "*", s.strip())
    s = re.sub(r"\s*/\s*", "/", s)
    s = re.sub(r"(?<=[A-Za-z0-9)])\s+(?=[A-Za-z(])", "*", s)
    return s or None


def convert(value: float, from_unit: str, to_unit: str) -> float | None:
    """``value`` in ``from_unit`` expressed in ``to_unit`` (both LaTeX), or None when pint cannot do it."""
    a, b = latex_unit_to_pint(from_unit), latex_unit_to_pint(to_unit)
    if not a or not b:
        return None
    try:
        ureg = _registry()
        return float(ureg.Quantity(value, a).to(b).magnitude)
    except Exception:  # noqa: BLE001 - unknown unit, dimension mismatch, parse error: no conversion
        return None
