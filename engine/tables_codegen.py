"""Code generation of decision tables, for engine.codegen's CodeGenerator (a mixin: it uses the
generator's writer `w`, slots and expression compiler).

`first` and `priority` tables are one if/elif chain, in the table's function (`_L<k>`, called
lazily) and, where evaluate_fast reads the table before anything else, inline in its try block
(CodeGenerator._hoist): no call, the hand-written shape. `unique` and `collect` tables test every
row into lists.
"""

from __future__ import annotations

from regua.dsl import ast
from regua.dsl import types as T

from .expressions import arithmetic_step


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
