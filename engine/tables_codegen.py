"""Code generation of decision tables, for engine.codegen's CodeGenerator (a mixin: it uses the
generator's writer `w`, slots and expression compiler).

`first` and `priority` tables are one if/elif chain, in the table's function (`_L<k>`, called
lazily) and, where evaluate_fast reads the table before anything else, inline in its try block
(CodeGenerator._hoist): no call, the hand-written shape. A `first` table of TREE_MIN_ROWS or more
monotonic thresholds on one number (`>= 950`, `>= 900`, ... `else`) tests its rows as a binary
search instead (_threshold_rows, _row_tree): about log2(rows) comparisons rather than, on
average, half the rows. `unique` and `collect` tables test every row into lists.
"""

from __future__ import annotations

from regua.dsl import ast
from regua.dsl import types as T

from .expressions import arithmetic_step

# From this many threshold rows on, a row is found by binary search (_row_tree): the chain tests
# half the rows on average (one bytecode comparison each), the search log2 of them. For fewer
# rows, the chain's early hits win.
TREE_MIN_ROWS = 8
_NUMBER_COLUMNS = (T.INT, T.DECIMAL, T.MONEY)
_NUMBER_LITERALS = ("int", "decimal", "money")


class TableCodegen:
    def _table(self, name: str, table: ast.Table) -> None:
        w, k = self.w, self.slot_of[name]
        row_slot = self.table_rows[name][0]
        self.at = table.span.line
        w.line(f"def _L{k}(s, i, rt):  # table {name} ({table.hit_policy})", table.span.line)
        w.indent()
        policy = table.hit_policy
        if policy in ("first", "priority"):
            self._first_hit(name, table, "c", "v = s[{k}] = {value}", "return v")
            w.dedent()
            w.line("")
            return
        for n, column in enumerate(table.inputs):
            w.line(f"c{n} = {self.expr(column)}", column.span.line)
        w.line("out = []", table.span.line)
        w.line("hit = []", table.span.line)
        for index, row in enumerate(table.rows):
            if row.is_else:
                w.line("if not hit:", row.span.line)
            else:
                w.line(f"if {self._row_condition('c', row)}:", row.span.line)
            w.indent()
            w.line(f"out.append({self.expr(row.result)}); hit.append({index})", row.span.line)
            w.dedent()
        if policy == "collect":
            w.line(f"s[{row_slot}] = hit", table.span.line)
            w.line(f"s[{k}] = out", table.span.line)
            w.line("return out", table.span.line)
        else:  # unique
            w.line("if len(hit) > 1:", table.span.line)
            w.line(f"    _not_unique({name!r})", table.span.line)
            w.line("if not hit:", table.span.line)
            w.line(f"    _no_match({name!r})", table.span.line)
            w.line(f"s[{row_slot}] = hit[0]", table.span.line)
            w.line(f"s[{k}] = out[0]", table.span.line)
            w.line("return out[0]", table.span.line)
        w.dedent()
        w.line("")

    def _first_hit(self, name: str, table: ast.Table, column: str, store: str, after: str | None) -> None:
        """A `first` (or `priority`) table as one if/elif chain, in its function or inline where
        evaluate_fast computes it (_hoist): the columns into locals `<column>0..n`, then per row,
        in hit order, the row's number into its row slot and `store` (formatted with the table's
        slot `k` and the row's `value`), then `after`; no row and no `else`: TABLE_NO_MATCH."""
        w, k = self.w, self.slot_of[name]
        row_slot = self.table_rows[name][0]
        for n, expr in enumerate(table.inputs):
            w.line(f"{column}{n} = {self.expr(expr)}", expr.span.line)
        if _threshold_rows(table):
            self._row_tree(name, table, column, store, after, 0, len(table.rows) - table.rows[-1].is_else)
            return
        rows = list(enumerate(table.rows))
        if table.hit_policy == "priority":
            rows.sort(key=lambda pair: (-pair[1].priority, pair[0]))
        keyword = "if"
        for index, row in rows:
            if row.is_else:
                if keyword == "elif":
                    w.line("else:", row.span.line)
                    w.indent()
            else:
                w.line(f"{keyword} {self._row_condition(column, row)}:", row.span.line)
                w.indent()
            w.line(f"s[{row_slot}] = {index}", row.span.line)
            w.line(store.format(k=k, value=self.expr(row.result)), row.span.line)
            if after:
                w.line(after, row.span.line)
            if keyword == "elif" or not row.is_else:
                w.dedent()
            if row.is_else:
                return
            keyword = "elif"
        if keyword == "if":  # no rows (the checker refuses it; kept valid Python regardless)
            w.line(f"_no_match({name!r})", table.span.line)
            return
        w.line("else:", table.span.line)
        w.line(f"    _no_match({name!r})", table.span.line)

    def _row_tree(self, name: str, table: ast.Table, column: str, store: str, after: str | None,
                  low: int, high: int) -> None:
        """_first_hit for a table _threshold_rows accepts, when the first row that holds is
        between `low` and `high` (`high` = the number of threshold rows: the `else` row, or no
        match): one row's own condition halves the interval. The rows' conditions are monotonic
        (once one holds, every later one does), so row `mid` holding means the answer is at most
        `mid`, and failing that it is above: the chain's answer, in about log2(rows) tests."""
        w, k = self.w, self.slot_of[name]
        rows = table.rows
        if low == high:
            if low == len(rows):  # past every threshold and no `else`
                w.line(f"_no_match({name!r})", table.span.line)
                return
            row = rows[low]
            w.line(f"s[{self.table_rows[name][0]}] = {low}", row.span.line)
            w.line(store.format(k=k, value=self.expr(row.result)), row.span.line)
            if after:
                w.line(after, row.span.line)
            return
        mid = (low + high) // 2
        w.line(f"if {self._row_condition(column, rows[mid])}:", rows[mid].span.line)
        w.indent()
        self._row_tree(name, table, column, store, after, low, mid)
        w.dedent()
        w.line("else:", rows[mid].span.line)
        w.indent()
        self._row_tree(name, table, column, store, after, mid + 1, high)
        w.dedent()

    def _row_condition(self, column: str, row: ast.Row) -> str:
        return " and ".join(self._cell(f"{column}{n}", cell) for n, cell in enumerate(row.cells or [])
                            if cell.kind != "any") or "True"

    def _cell(self, column: str, cell: ast.Cell) -> str:
        values = [self.expr(v) for v in cell.values]
        if cell.kind == "compare":
            return f"({column} {cell.op} {values[0]})"
        if cell.kind == "range":
            return f"({values[0]} <= {column} <= {values[1]})"
        if cell.kind == "in":
            return f"({column} in ({''.join(v + ', ' for v in values)}))"
        return f"({column} == {values[0]})"


def _threshold_rows(table: ast.Table) -> bool:
    """Whether `table` is a `first` table on one number column whose rows (an `else` row aside,
    which must be last) are at least TREE_MIN_ROWS comparisons with one operator against number
    literals, strictly monotonic in the direction that makes every row reachable (`>=`/`>`
    decreasing, `<`/`<=` increasing). Numbers that reach a policy are totally ordered (no NaN),
    so each row's condition holds for every input the previous one does: _row_tree's search finds
    the chain's row."""
    if table.hit_policy != "first" or len(table.inputs) != 1 or table.inputs[0].type not in _NUMBER_COLUMNS:
        return False
    rows = table.rows[:-1] if table.rows and table.rows[-1].is_else else table.rows
    if len(rows) < TREE_MIN_ROWS:
        return False
    ops, keys = set(), []
    for row in rows:
        if row.is_else or len(row.cells) != 1 or row.cells[0].kind != "compare" or len(row.cells[0].values) != 1:
            return False
        key = _number(row.cells[0].values[0])
        if key is None:
            return False
        ops.add(row.cells[0].op)
        keys.append(key)
    if len(ops) != 1 or (op := ops.pop()) not in (">=", ">", "<", "<="):
        return False
    descending = op in (">=", ">")
    return all((a > b) if descending else (a < b) for a, b in zip(keys, keys[1:]))


def _number(expr: ast.Expr):
    """The value of a number literal, negative ones (`-5`, a minus applied to `5`) included; else None."""
    sign = 1
    if isinstance(expr, ast.Unary) and expr.op == "-":
        sign, expr = -1, expr.operand
    if isinstance(expr, ast.Literal) and expr.kind in _NUMBER_LITERALS:
        return sign * expr.value
    return None


def leading_name(expr: ast.Expr) -> ast.Name | None:
    """The name an expression reads before anything else, when it starts with one (`faixa <= 3`,
    `faixa.teto * 2`, `faixa`): the leftmost operand, down through operators and attributes."""
    while True:
        if isinstance(expr, ast.Name):
            return expr
        if isinstance(expr, ast.Binary):
            operands, links = ast.chain(expr)
            if any(arithmetic_step(link) == "B" for link in links):
                return None  # business days + date is emitted as _date_add(date, days): right first
            expr = operands[0]
        elif isinstance(expr, ast.Attribute):
            if isinstance(expr.target.type, T.ListType):
                return None  # `list.field` goes through the budget counter first
            expr = expr.target
        elif isinstance(expr, ast.Unary):
            expr = expr.operand
        elif isinstance(expr, ast.IfExpr):
            expr = expr.condition
        elif isinstance(expr, ast.InRange):
            expr = expr.low  # emitted as (low <= value <= high)
        elif isinstance(expr, ast.InList):
            expr = expr.value
        else:
            return None
