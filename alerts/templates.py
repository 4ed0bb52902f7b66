"""Rule texts (summary, intervention, `texts`) as templates: `{scope}`, `{value:.0%}`... Pure: no I/O.

A rule text is written by whoever may save rules, and it also reaches the workers from the rules topic
without passing the API, so it is never given to `str.format`. `check` says why a text is refused;
`render` fills in a text that passes it and leaves any other one as written:

- a field is one of `FIELDS` (what the engine passes), by name: no `{}` or `{0}`, no attribute access
  or indexing (`{value.__class__}`, `{scope[0]}`), no conversion (`!s`, `!r`, `!a`);
- a format spec is the standard mini-language, `[[fill]align][sign][z][#][0][width][,|_][.precision][type]`,
  without nested fields, with width at most `MAX_WIDTH` and precision at most `MAX_PRECISION`, and
  one that applies to the field (`{value:.0%}`, `{count:d}`, `{scope:>20}`; not `{scope:.0%}`); the
  type `c` (a character from a number) is refused;
- at most `MAX_FIELDS` fields in one text.

So a text grows by at most `MAX_FIELDS` fields of at most `MAX_WIDTH` characters (or the value's own
length, when longer); `render` also gives up (the text as written) past `MAX_GROWTH` characters more
than the text, whatever the values.
"""

from __future__ import annotations

import functools
import re
import string
from typing import Any, Literal

FIELDS = ("scope", "value", "count", "window", "kpi", "severity", "threshold")
MAX_WIDTH = 64
MAX_PRECISION = 10
MAX_FIELDS = 16
MAX_GROWTH = 8192  # characters a rendered text may add to its template before it is left as written

Kind = Literal["text", "number", "integer"]
KIND: dict[str, Kind] = {"scope": "text", "window": "text", "kpi": "text", "severity": "text",
                         "value": "number", "threshold": "number", "count": "integer"}
_SAMPLE: dict[Kind, object] = {"text": "team:billing", "number": 0.5, "integer": 3}
_KIND_SAID: dict[Kind, str] = {"text": "text", "number": "a number", "integer": "a whole number"}
_SPEC = re.compile(r"(?:(?P<fill>[^{}])?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>\#)?(?P<zero>0)?"
                   r"(?P<width>\d+)?(?P<grouping>[,_])?(?:\.(?P<precision>\d+))?(?P<type>[bcdeEfFgGnosxX%])?")
_SPEC_SHAPE = "[[fill]align][sign][z][#][0][width][,|_][.precision][type]"

# A parsed template: literal text and (field, spec) pairs in order, or the reason it is refused.
Piece = str | tuple[str, str]
Compiled = tuple[Piece, ...] | str


def _number(digits: str, limit: int, what: str, field: str) -> str | None:
    """Why `digits` (a width or a precision) is refused, or None. Never converts a huge digit string."""
    stripped = digits.lstrip("0") or "0"
    if len(stripped) <= len(str(limit)) and int(stripped) <= limit:
        return None
    shown = stripped if len(stripped) <= 20 else stripped[:20] + "…"
    return f"field {{{field}}}: {what} {shown} is over {limit}"


def _spec_error(field: str, spec: str) -> str | None:
    """Why `spec` is refused for `field` (one of FIELDS), or None."""
    if "{" in spec or "}" in spec:
        return f"field {{{field}:{spec}}}: a format spec cannot hold {{ or }} (no nested fields)"
    m = _SPEC.fullmatch(spec)
    if m is None:
        return f"field {{{field}}}: {spec!r} is not a format spec ({_SPEC_SHAPE})"
    if m["type"] == "c":
        return f"field {{{field}}}: format type 'c' (a character from a number) is not allowed"
    for what, limit in (("width", MAX_WIDTH), ("precision", MAX_PRECISION)):
        if m[what] is not None and (why := _number(m[what], limit, what, field)) is not None:
            return why
    kind = KIND[field]
    try:  # the spec is bounded now: trying it on a value of the field's kind is cheap and says exactly why not
        format(_SAMPLE[kind], spec)
    except (ValueError, TypeError) as exc:
        return f"field {{{field}}}: format spec {spec!r} does not apply to {field} ({_KIND_SAID[kind]}): {exc}"
    return None


def _field_error(name: str, spec: str, conversion: str | None) -> str | None:
    known = ", ".join(FIELDS)
    if name == "" or name.isdigit():
        return f"field {{{name}}} is positional: name one of {known}"
    base = re.split(r"[.\[]", name, maxsplit=1)[0]
    if base != name:
        hint = f"; write {{{base}}}" if base in FIELDS else ""
        return f"field {{{name}}}: attribute access and indexing are not allowed{hint}"
    if name not in FIELDS:
        return f"field {{{name}}} is not one of {known}"
    if conversion is not None:
        return (f"field {{{name}!{conversion}}}: conversions (!s, !r, !a) are not allowed; write {{{name}}} "
                f"or {{{name}:FORMAT}}")
    return _spec_error(name, spec)


@functools.lru_cache(maxsize=512)
def compile_template(template: str) -> Compiled:
    """The pieces of `template`, or why it is refused (the first reason found)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a valid template ({exc}); write {{{{ or }}}} for a literal brace"
    pieces: list[Piece] = []
    fields = 0
    for literal, name, spec, conversion in parsed:
        if literal:
            pieces.append(literal)
        if name is None:
            continue
        fields += 1
        if fields > MAX_FIELDS:
            total = sum(1 for p in parsed if p[1] is not None)
            return f"at most {MAX_FIELDS} fields in one text; this one has {total}"
        why = _field_error(name, spec or "", conversion)
        if why is not None:
            return why
        pieces.append((name, spec or ""))
    return tuple(pieces)


def check(template: str) -> None:
    """Raise ValueError saying why `template` is refused; return if it is a valid rule text."""
    compiled = compile_template(template)
    if isinstance(compiled, str):
        raise ValueError(compiled)


def render(template: str, **kw: Any) -> str:
    """`template` with its fields filled in from `kw`. Never raises: a template `check` refuses, a
    field missing from `kw`, a value the spec does not apply to (`{value:.0%}` of None) or a text
    grown by over MAX_GROWTH characters leave the text as written."""
    compiled = compile_template(template)
    if isinstance(compiled, str):
        return template
    out: list[str] = []
    budget = len(template) + MAX_GROWTH
    for piece in compiled:
        if isinstance(piece, str):
            text = piece
        else:
            name, spec = piece
            if name not in kw:
                return template
            try:
                text = format(kw[name], spec)
            except Exception:  # never raises, whatever a value's __format__ does
                return template
        budget -= len(text)
        if budget < 0:
            return template
        out.append(text)
    return "".join(out)
