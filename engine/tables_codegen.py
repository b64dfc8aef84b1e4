"""Code generation of decision tables, for engine.codegen's CodeGenerator (a mixin: it uses the
generator's writer `w`, slots and expression compiler).

`first` and `priority` tables are one if/elif chain, in the table's function (`_L<k>`, called
lazily) and, where evaluate_fast reads the table before anything else, inline in its try block
(CodeGenerator._hoist): no call, the hand-written shape. A `first` table of BISECT_MIN_ROWS or more
thresholds on one number (`>= 950`, `>= 900`, ... `else`) finds its row by binary search instead
(_threshold_rows). `unique` and `collect` tables test every row into lists.
"""

from __future__ import annotations

from regua.dsl import ast
from regua.dsl import types as T

from .expressions import arithmetic_step

# From this many threshold rows on, one bisect call (C) costs less than walking the chain: the
# chain tests half the rows on average, about one bytecode comparison each.
BISECT_MIN_ROWS = 8
_NUMBER_COLUMNS = (T.INT, T.DECIMAL, T.MONEY)
_NUMBER_LITERALS = ("int", "decimal", "money")
_CONSTANT_RESULTS = ("int", "decimal", "money", "percent", "text", "bool")


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
        search = _threshold_rows(table)
        if search is not None:
            self._bisected(name, table, column, store, after, *search)
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

    def _bisected(self, name: str, table: ast.Table, column: str, store: str, after: str | None,
                  function: str, descending: bool) -> None:
        """_first_hit for a table _threshold_rows accepts: the row's number from one bisect over
        the thresholds in ascending order, then the same row slot, `store` and `after`. The
        thresholds and the rows' results are module constants (`_RowKeys<k>`, `_RowValues<k>`)."""
        w, k = self.w, self.slot_of[name]
        row_slot = self.table_rows[name][0]
        if k not in self.bisected:
            self.bisected.add(k)
            keys = [self.expr(row.cells[0].values[0]) for row in table.rows if not row.is_else]
            values = [self.expr(row.result) for row in table.rows]
            if descending:
                keys.reverse()
            self.constant_lines.append(f"_RowKeys{k} = ({', '.join(keys)},)")
            self.constant_lines.append(f"_RowValues{k} = ({', '.join(values)},)")
        count = sum(1 for row in table.rows if not row.is_else)
        line = table.span.line
        found = f"_{function}(_RowKeys{k}, {column}0)"
        w.line(f"{column}r = {count} - {found}" if descending else f"{column}r = {found}", line)
        if not table.rows[-1].is_else:
            w.line(f"if {column}r == {count}:", line)
            w.line(f"    _no_match({name!r})", line)
        w.line(f"s[{row_slot}] = {column}r", line)
        w.line(store.format(k=k, value=f"_RowValues{k}[{column}r]"), line)
        if after:
            w.line(after, line)

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


def _threshold_rows(table: ast.Table) -> tuple[str, bool] | None:
    """(bisect function, descending) when `table` is a `first` table on one number column whose
    rows are all one comparison with the same operator against a number literal, strictly
    monotonic in the direction that makes every row reachable (`>=`/`>` decreasing, `<`/`<=`
    increasing), at least BISECT_MIN_ROWS of them, an `else` row only last, and every result a
    literal. Then the first row that holds is the one a bisect finds: numbers (no NaN reaches a
    policy) are totally ordered, so `c >= t` is `not c < t` and the chain's answer is where `c`
    falls among the sorted thresholds. Anything else: None (the if/elif chain)."""
    if table.hit_policy != "first" or len(table.inputs) != 1 or table.inputs[0].type not in _NUMBER_COLUMNS:
        return None
    rows = table.rows[:-1] if table.rows and table.rows[-1].is_else else table.rows
    if len(rows) < BISECT_MIN_ROWS:
        return None
    ops, keys = set(), []
    for row in rows:
        if row.is_else or len(row.cells) != 1 or row.cells[0].kind != "compare":
            return None
        cell = row.cells[0]
        literal = cell.values[0] if len(cell.values) == 1 else None
        if not isinstance(literal, ast.Literal) or literal.kind not in _NUMBER_LITERALS:
            return None
        ops.add(cell.op)
        keys.append(literal.value)
    if len(ops) != 1 or any(not isinstance(row.result, ast.Literal) or row.result.kind not in _CONSTANT_RESULTS
                            for row in table.rows):
        return None
    op = ops.pop()
    descending = op in (">=", ">")
    if op not in (">=", ">", "<", "<=") or not all(
            (a > b if descending else a < b) for a, b in zip(keys, keys[1:])):
        return None
    # How many thresholds lie on the failing side of `c`: `>=` fails for t > c, so the rows that
    # hold are the thresholds <= c (bisect_right); `>` holds for t < c (bisect_left); `<` fails
    # for t <= c (bisect_right); `<=` fails for t < c (bisect_left).
    return ("bisect_right" if op in (">=", "<") else "bisect_left"), descending


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
