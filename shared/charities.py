"""The charities a stake can go to: the names users read, by the id goals store."""

from __future__ import annotations

CHARITY_NAMES = {
    "givedirectly": "GiveDirectly",
    "against_malaria_foundation": "the Against Malaria Foundation",
    "doctors_without_borders": "Doctors Without Borders",
    "red_cross": "the Red Cross",
    "unicef": "UNICEF",
    "wikimedia": "the Wikimedia Foundation",
}


def display_name(charity: str | None) -> str | None:
    return CHARITY_NAMES.get(charity, charity) if charity else None
