"""A Griffe extension for the API pages (``mkdocs.yml`` loads it): Sphinx roles become code.

rsgeo's docstrings name other objects the Sphinx way (``:func:`rsgeo.x```,
``:class:`~rsgeo.errors.OptionError```), which reads well in ``help()`` and
in the source. Markdown has no roles, so the site shows them as code spans:
``rsgeo.x``, ``OptionError`` (a leading ``~`` keeps the last name only, as in Sphinx).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|exc|data|obj|const):`(~?)([^`]+)`")


def roles_to_code(text: str) -> str:
    """``:func:`a.b``` -> ```a.b```; ``:class:`~a.B``` -> ```B```."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class RolesToCode(Extension):
    """Rewrite the roles in every docstring Griffe loads."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = roles_to_code(obj.docstring.value)
