"""How an exchange rate is quoted: "Japanese yen per US dollar" or "US dollars per euro".

An exchange-rate table holds one rate per country, each in its own currency, and a package's notes say which way
each is quoted (FRED quotes a few "to USD": AUD, IEP, NZD, GBP and EUR; the exchange-rates package says it inverted
those, so all its rates are units per US dollar). A number without that unit cannot be read: 107.8 is yen per
dollar, 0.70 is euros per dollar.
"""

from __future__ import annotations

import re

# Issuing country (as exchange-rate tables name it) -> (ISO code, the currency in words, plural).
COUNTRY_CURRENCY = {
    "Japan": ("JPY", "Japanese yen"), "China": ("CNY", "Chinese yuan"), "India": ("INR", "Indian rupees"),
    "Euro": ("EUR", "euros"), "United Kingdom": ("GBP", "pounds sterling"), "Canada": ("CAD", "Canadian dollars"),
    "Australia": ("AUD", "Australian dollars"), "New Zealand": ("NZD", "New Zealand dollars"),
    "Switzerland": ("CHF", "Swiss francs"), "Sweden": ("SEK", "Swedish kronor"), "Norway": ("NOK", "Norwegian kroner"),
    "Denmark": ("DKK", "Danish kroner"), "South Korea": ("KRW", "South Korean won"), "Brazil": ("BRL", "Brazilian reais"),
    "Mexico": ("MXN", "Mexican pesos"), "South Africa": ("ZAR", "South African rand"),
    "Singapore": ("SGD", "Singapore dollars"), "Hong Kong": ("HKD", "Hong Kong dollars"),
    "Taiwan": ("TWD", "New Taiwan dollars"), "Thailand": ("THB", "Thai baht"), "Malaysia": ("MYR", "Malaysian ringgit"),
    "Sri Lanka": ("LKR", "Sri Lankan rupees"), "Venezuela": ("VES", "Venezuelan bolívares"),
    "Ireland": ("IEP", "Irish pounds"), "Austria": ("ATS", "Austrian schillings"), "Belgium": ("BEF", "Belgian francs"),
    "Finland": ("FIM", "Finnish markkas"), "France": ("FRF", "French francs"), "Germany": ("DEM", "Deutsche marks"),
    "Greece": ("GRD", "Greek drachmas"), "Italy": ("ITL", "Italian lire"), "Netherlands": ("NLG", "Dutch guilders"),
    "Portugal": ("PTE", "Portuguese escudos"), "Spain": ("ESP", "Spanish pesetas"),
    "United States": ("USD", "US dollars"),
}
_SINGULAR = {"GBP": "pound sterling", "CHF": "Swiss franc", "BRL": "Brazilian real"}
# Quoted as US dollars per unit of the currency by market convention, when a table does not say.
USD_PER_UNIT = {"EUR", "GBP", "AUD", "NZD", "IEP"}


def usd_per_unit_codes(text: str) -> set[str]:
    """The currencies a table's description says are quoted in US dollars ("Only AUD, IEP, NZD, GBP and EUR to
    USD"); the market convention when it names none. Notes saying the package *inverted* some values mean it
    turned those source series around to the common quote: every rate is then units of currency per US dollar
    (the exchange-rates package's euro reads 0.70 in January 2010, when a euro bought 1.43 dollars)."""
    if re.search(r"\binverted values\b", text, re.IGNORECASE):
        return set()
    return set(re.findall(r"\b([A-Z]{3})\b(?=[^.]*\bto USD\b)", text)) - {"USD"} or set(USD_PER_UNIT)


def quote_unit(country: str, description: str) -> str:
    """The unit of ``country``'s rate in a table described by ``description``: "Japanese yen per US dollar",
    "US dollars per euro"; "" for a country whose currency is not known."""
    code, name = COUNTRY_CURRENCY.get(country, (None, None))
    if code is None or code == "USD":
        return ""
    if code in usd_per_unit_codes(description):
        return f"US dollars per {_SINGULAR.get(code) or re.sub(r'(?<=[a-z])s$', '', name)}"
    return f"{name} per US dollar"
