"""The one jinja2 environment for every file dindkit writes (templates/<path of the file>.j2)."""

from functools import cache
from io import StringIO
from typing import Any

import jinja2

from dindkit.paths import TEMPLATES_DIR


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` (a path relative to templates/, ending in .j2)."""
    return environment().get_template(template).render(**context)


def render_io(template: str, **context: Any) -> StringIO:
    """Rendered text as a file-like object, for ``files.put(src=...)``."""
    return StringIO(render(template, **context))
