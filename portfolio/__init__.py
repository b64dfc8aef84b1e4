"""The collection portfolio: customers, receivables, payments and agreements, in the SQLite store.

The collection cadence (issue 5) runs on these records; `regua import` loads them from CSV or JSON.
"""

from .importer import ImportReport, PortfolioFileError, import_file, import_rows
from .model import Agreement, Customer, Payment, Receivable, RowError, parse
from .store import Portfolio

__all__ = ["Agreement", "Customer", "ImportReport", "PortfolioFileError", "Payment", "Portfolio", "Receivable", "RowError",
           "import_file", "import_rows", "parse"]
