"""Rendering console pages: one Jinja2 environment (autoescaping on, always), Brazilian formats,
personal-data masking, and the security headers every console answer carries."""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from litestar import Request, Response

from regua.engine.brazil import BRASILIA
from regua.engine.connectors import mask_document, mask_documents_in

HERE = Path(__file__).resolve().parent
# No inline script or style anywhere (scripts and styles are files under /console/static), no
# framing, no third-party origin: every asset is served by this app.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def brl(value: Any) -> str:
    """R$ 32.000,00 (exact: amounts arrive as decimal strings)."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return str(value)
    sign = "-" if amount < 0 else ""
    whole, cents = f"{abs(amount):.2f}".split(".")
    return f"{sign}R$ {int(whole):,}".replace(",", ".") + f",{cents}"


def number_br(value: Any, places: int = 2) -> str:
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    whole, _, fraction = f"{abs(number):,.{places}f}".partition(".")
    text = whole.replace(",", ".") + ("," + fraction if fraction else "")
    return ("-" if number < 0 else "") + text


def percent_br(value: Any) -> str:
    return "—" if value is None else number_br(value) + "%"


def date_br(value: Any) -> str:
    """22/11/2026 for a date; 22/11/2026 14:05 (Brasília) for an instant."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.datetime):
        instant = value
    elif isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    else:
        text = str(value)
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text).strftime("%d/%m/%Y")
            instant = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(BRASILIA).strftime("%d/%m/%Y %H:%M")


# Field names that hold personal data whatever their declared type (names, contacts).
_PERSONAL = re.compile(r"(^|_)(nome|name|email|e_mail|telefone|phone|celular|whatsapp|endereco|address)($|_)", re.I)


def mask_value(name: str, value: Any, personal_types: set[str] | frozenset[str] = frozenset()) -> Any:
    """A value shown in a page: documents and personal fields masked, CPF/CNPJ-shaped text masked."""
    if isinstance(value, dict):
        return {k: mask_value(k, v, personal_types) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(name, v, personal_types) for v in value]
    if isinstance(value, str) and name in personal_types:
        return mask_document(value)  # documents keep their last two digits, as everywhere in Régua
    if isinstance(value, str) and _PERSONAL.search(name or ""):
        return "•" * min(len(value), 8)  # names and contacts: nothing of them
    if isinstance(value, str):
        return mask_documents_in(value)
    return value


def output_formatter(output_types: dict[str, str]):
    """show(name, value) for templates: money in reais, percent with a comma, None as a dash."""
    def show(name: str, value: Any) -> str:
        kind = output_types.get(name)
        if value is None:
            return "—"
        if kind == "money":
            return brl(value)
        if kind == "percent" and isinstance(value, str):
            return percent_br(value.rstrip("%"))
        if kind == "date":
            return date_br(value)
        return value if isinstance(value, str) else str(value)
    return show


@functools.cache
def environment():
    """Built at the first page (jinja2 is imported then, not when the server starts)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(brl=brl, number=number_br, percent=percent_br, date=date_br)
    return env


NAV = [  # (label, href, scopes that may open it)
    ("Políticas", "/console/policies", ("evaluate", "policies:admin")),
    ("Playground", "/console/playground", ("evaluate",)),
    ("Decisões", "/console/decisions", ("decisions:read",)),
    ("Revisões", "/console/reviews", ("decisions:read",)),
    ("Cobrança", "/console/collection", ("collection",)),
    ("Indicadores", "/console/kpis", ("decisions:read",)),
    ("Replays", "/console/replays", ("lab",)),
]


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    session = request.scope.get("console_session")
    nav = [(label, href) for label, href, scopes in NAV if session is not None and session.may(*scopes)]
    html = environment().get_template(template).render(session=session, nav=nav, path=request.url.path, **context)
    return Response(html, status_code=status_code, media_type="text/html; charset=utf-8",
                    headers=SECURITY_HEADERS)
