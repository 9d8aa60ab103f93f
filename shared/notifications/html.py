"""HTML bodies from Jinja2 templates with autoescaping on: a display name, goal title or any other
text a user wrote is always text in an email, never markup."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment


@cache
def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("shared.notifications", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,  # a missing value is an error, never an empty hole in a message
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
