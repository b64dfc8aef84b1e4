"""`regua import`: load portfolio records (customers, receivables, payments, agreements)."""

from __future__ import annotations

import sys

import click

from .common import err, out


@click.command("import")
@click.argument("kind", type=click.Choice(["customers", "receivables", "payments", "agreements"]))
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--db", default="var/regua.db", show_default=True, help="The store: a SQLite file or a postgresql:// URL.")
@click.option("--skip-invalid", is_flag=True, help="Write the valid rows even when some are rejected.")
@click.option("--delimiter", type=click.Choice([",", ";", "tab"]),
              help="CSV separator (default: detected from the header; Excel pt-BR uses ;).")
@click.option("--encoding", help="CSV encoding, e.g. utf-8 or cp1252 (default: detected; Excel pt-BR saves cp1252).")
def import_command(kind: str, files: tuple[str, ...], db: str, skip_invalid: bool, delimiter: str | None,
                   encoding: str | None) -> None:
    """Import portfolio records from CSV or JSON files; every rejected row is reported.

    CSV files as Excel pt-BR and LibreOffice save them are understood: ; or , or tab, UTF-8 or
    Windows-1252, amounts like 1.234,56 and dates like 23/03/2026. Without --skip-invalid, one
    bad row means nothing from that file is written (exit 1)."""
    from regua.portfolio import Portfolio, PortfolioFileError, import_file

    portfolio = Portfolio(db)
    failed = False
    for file in files:
        try:
            report = import_file(portfolio, kind, file, skip_invalid, "\t" if delimiter == "tab" else delimiter, encoding)
        except PortfolioFileError as error:
            err.print(f"regua import: {error}", style="red", markup=False)
            failed = True
            continue
        for where, error in report.rejected:
            err.print(f"{where}: {error.field or '(row)'}: {error.code}: {error.message}", markup=False)
        written = "nothing written" if report.rejected and not skip_invalid else f"{report.imported} imported"
        line = f"{file}: {report.read} {kind} read, {written}, {len({w for w, _ in report.rejected})} rejected"
        (out if report.ok else err).print(line, style="green" if report.ok else "yellow", markup=False)
        failed = failed or (bool(report.rejected) and not skip_invalid)
    portfolio.close()
    sys.exit(1 if failed else 0)
