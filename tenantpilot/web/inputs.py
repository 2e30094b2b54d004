"""The one place that reads numbers and text from requests, and writes CSV.

- Ids, cursors and integer filters are ASCII digits only (Python's ``int()`` and
  ``str.isdigit()`` also take "١٢" and "²") and bounded to the database column range
  (``INTEGER``, 2**31 − 1): out of range or malformed → 400 with a message naming the
  parameter; a path id → 404, because no such row can exist.
- Text with NUL or other control characters (PostgreSQL cannot store NUL; nobody types
  the others) is refused: a field error on forms (``SafeForm``), a 400 for query strings.
- CSV cells that a spreadsheet would read as a formula are neutralized.
"""
from __future__ import annotations

import csv
import io
import re

from flask import abort, request
from flask_wtf import FlaskForm
from werkzeug.routing import IntegerConverter
from wtforms import IntegerField

ID_MAX = 2**31 - 1  # PostgreSQL INTEGER, the type of every id column
_DIGITS = re.compile(r"[0-9]{1,10}")
# C0 controls except tab, newline and carriage return; DEL; C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_MESSAGE = "Remove the control characters (such as NUL) from this value."


def parse_int(raw: str | None, *, minimum: int = 0, maximum: int = ID_MAX) -> int | None:
    """ASCII digits within [minimum, maximum] → int; anything else → None."""
    if raw is None or not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def arg_int(name: str, *, minimum: int = 1, maximum: int = ID_MAX, source=None) -> int | None:
    """An optional integer parameter (query string by default): absent or empty → None;
    malformed or out of range → 400 naming the parameter."""
    values = request.args if source is None else source
    raw = (values.get(name) or "").strip()
    if not raw:
        return None
    value = parse_int(raw, minimum=minimum, maximum=maximum)
    if value is None:
        abort(400, f"“{name}” must be a whole number from {minimum} to {maximum:,} (digits 0–9 only).")
    return value


def form_int(name: str, **kw) -> int | None:
    """``arg_int`` for a form field of a POST."""
    return arg_int(name, source=request.form, **kw)


def has_control_chars(value: str) -> bool:
    return bool(_CONTROL.search(value))


def form_text(name: str, default: str = "") -> str:
    """A raw form value for views without a WTForms form: control characters → 400."""
    value = request.form.get(name, default)
    if has_control_chars(value):
        abort(400, f"The field “{name}” contains control characters (such as NUL). Remove them and try again.")
    return value


def reject_control_chars_in_query() -> None:
    """before_request: query strings carry filters and cursors, never control characters."""
    for name, value in request.args.items(multi=True):
        if has_control_chars(name) or has_control_chars(value):
            abort(400, f"The parameter “{name[:40]}” contains control characters (such as NUL).")


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` in every route: ASCII digits, within the id column range. Anything
    else does not match the route, so it is a 404 like any unknown row."""

    regex = r"[0-9]{1,10}"

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", ID_MAX)
        super().__init__(map, *args, **kwargs)


def coerce_id(value) -> int:
    """``coerce=`` for id choices: ASCII digits within the column range, else ValueError
    (WTForms shows it as "Not a valid choice")."""
    if isinstance(value, int):
        return value
    if value is None or str(value).strip() == "":
        return 0  # "nothing chosen"; never a row id
    parsed = parse_int(str(value).strip())
    if parsed is None:
        raise ValueError("not an id")
    return parsed


class BoundedIntegerField(IntegerField):
    """An IntegerField that takes ASCII digits only, within the column range."""

    def __init__(self, *args, minimum: int = -ID_MAX, maximum: int = ID_MAX, **kwargs):
        super().__init__(*args, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        raw = valuelist[0].strip()
        if raw == "":
            self.data = None
            return
        negative = raw.startswith("-")
        value = parse_int(raw[1:] if negative else raw, maximum=max(abs(self.minimum), self.maximum))
        value = None if value is None else (-value if negative else value)
        if value is None or not (self.minimum <= value <= self.maximum):
            self.data = None
            raise ValueError(f"Enter a whole number from {self.minimum:,} to {self.maximum:,}.")
        self.data = value


class SafeForm(FlaskForm):
    """Base of every form: a text field holding control characters gets a field error and
    the form is invalid before any validator (or database lookup) sees the value."""

    def validate(self, extra_validators=None):
        bad = [f for f in self._fields.values() if isinstance(f.data, str) and has_control_chars(f.data)]
        if not bad:
            return super().validate(extra_validators=extra_validators)
        for field in bad:
            field.errors = [CONTROL_MESSAGE]
        self._errors = None
        return False


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text: text starting with a formula character gets a
    leading apostrophe (CSV injection); numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return str(value)


def csv_text(header: list[str], rows) -> str:
    """CSV text of ``rows`` (iterables of cells), every cell neutralized."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()
