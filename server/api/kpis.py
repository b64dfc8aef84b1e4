"""GET /kpis?from=&to=&segment=&current_days=&step_days=: the collection KPIs of a period.

Thin: parses the query, runs engine.collection.kpis.compute_kpis on the store's file (the portfolio
lives there) in a worker thread, and answers its report. Money and rates are strings with exactly
two decimal places (exact decimals, never floats); a rate is null where it is undefined (÷ 0).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Controller, get
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from msgspec import Meta

from regua.portfolio.collection.kpis import KpiArgumentError, compute_kpis

from ..errors import ApiError
from ..schemas import ErrorBody
from .deps import Svc, services

_ERRORS = {400: ResponseSpec(ErrorBody, description="bad query parameter"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the decisions:read scope")}
#: The code of a bad query parameter, as GET /decisions answers it (docs/http-api.md).
INVALID = "INVALID_QUERY"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Money = Annotated[str, Meta(pattern=r"^\d+\.\d{2}$", description="exact amount, 2 decimal places",
                            examples=["1234.50"])]
Rate = Annotated[str, Meta(pattern=r"^\d+\.\d{2}$", description="2 decimal places, rounded half to even")]


class AgingBucketOut(msgspec.Struct):
    bucket: Annotated[str, Meta(description="current, 1-30, 31-60, 61-90 or 90+ days past due")]
    amount: Money
    count: int


class RollPeriodOut(msgspec.Struct):
    start: dt.date
    end: dt.date
    current_to_1_30: Rate | None
    from_1_30_to_31_60: Rate | None
    from_31_60_to_61_90: Rate | None
    from_61_90_to_90_plus: Rate | None


class KpiResponse(msgspec.Struct):
    """Collection KPIs of [date_from, date_to]; formulas in docs/collection.md."""

    date_from: dt.date
    date_to: dt.date
    segment: str | None
    current_days: int
    days: int
    credit_sales: Money
    opening_ar: Money
    closing_ar: Money
    closing_current_ar: Money
    dso: Annotated[Rate | None, Meta(description="days sales outstanding, in days")]
    cei: Annotated[Rate | None, Meta(description="collection effectiveness index, %")]
    defaulted: Money
    recovered: Money
    recovery_rate: Annotated[Rate | None, Meta(description="recovered ÷ in default, %")]
    aging: list[AgingBucketOut]
    roll_rates: list[RollPeriodOut]


def _invalid(name: str, code: str, message: str) -> ApiError:
    return ApiError(400, INVALID, message, [{"code": code, "message": message, "location": f"query.{name}"}])


def _date(value: str, name: str) -> dt.date:
    try:
        if _DATE.match(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise _invalid(name, "INVALID_DATE", f"{name} must be a date (YYYY-MM-DD)")


class KpiController(Controller):
    path = "/kpis"
    tags = ["collection"]
    opt = {"scope": "decisions:read"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/", summary="Collection KPIs of a period: DSO, CEI, recovery rate, aging, roll rates", responses=_ERRORS)
    async def kpis(self, svc: Svc,
                   from_: Annotated[str, QueryParameter(name="from", description="first day, YYYY-MM-DD")],
                   to: Annotated[str, QueryParameter(description="last day (included), YYYY-MM-DD")],
                   segment: Annotated[str | None, QueryParameter(description="only customers of this segment")] = None,
                   current_days: Annotated[int, QueryParameter(
                       ge=0, le=36500, description="for CEI: up to this many days past due counts as current")] = 0,
                   step_days: Annotated[int | None, QueryParameter(
                       ge=1, le=36500, description="roll-rate checkpoints every N days (default: month ends)")] = None,
                   ) -> KpiResponse:
        date_from, date_to = _date(from_, "from"), _date(to, "to")
        location = svc.settings.store.location

        def compute():
            return compute_kpis(location, date_from, date_to, segment, current_days, step_days)

        try:
            report = await anyio.to_thread.run_sync(compute)
        except KpiArgumentError as error:
            raise _invalid(error.field, "INVALID_VALUE", str(error)) from None
        except sqlite3.OperationalError as error:
            if "overflow" not in str(error):
                raise
            # sums beyond SQLite's 64-bit integers (about R$ 92 quadrillion in cents)
            raise ApiError(422, "KPI_OVERFLOW", "the portfolio's totals are too large to add up exactly") from None
        return msgspec.convert(report.to_dict(), KpiResponse)
