"""Code generation: a checked policy becomes one deterministic Python module.

Safety: no policy text is ever pasted into code. Identifiers become positional names
(i[...] keys, slot numbers, v0..vn), literals are emitted with repr() or hoisted
into typed constants, and record keys with repr(). Hostile names or strings can
therefore only ever be data.

Shape of the module (see docs/language.md, "How policies run"):
- one function per let and per table, computing the value on first use and storing it
  in the per-evaluation slot list `s` (laziness: a connector lookup runs only when a
  rule that needs it is reached, and short-circuits like `and` skip it);
- `evaluate_fast` runs the rules in order and returns the fired rules, errors and
  outputs; `evaluate_full` does the same and also records every rule's result.
Every emitted line maps back to a policy line (`linemap`) so runtime errors name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regua.dsl import ast
from regua.dsl.ast import unconditional
from regua.dsl.checker import CheckedPolicy
from regua.dsl.diagnostics import Diagnostic, PolicyError, Span
from regua.dsl.kinds import KINDS
from regua.dsl.limits import chain_lengths

from . import hot_path
from .condition_facts import condition_facts
from .expressions import AGGREGATES, ExpressionCompiler
from .input_loops import reads_input
from .tables_codegen import TableCodegen, leading_name

# Lets on longer chains are computed in dependency order before the rule or output that needs them.
HOIST_CHAIN = 32
# Rules per generated block function, in policies with more rules than this (see _evaluate).
RULE_BLOCK = 128


@dataclass
class Generated:
    source: str
    linemap: list[int]  # generated line (1-based index - 1) -> policy line
    slots: list[tuple[str, str, int, object]]  # (name, kind, policy line, type) per slot
    connectors: list[str]
    functions: list[str]
    value_paths: list[tuple]  # per rule: ((label, kind, key, path), ...)
    table_rows: dict[str, tuple[int, list[int]]] = field(default_factory=dict)  # table -> (row slot, row lines)
    # Lines before this index hold everything but `evaluate_full`, which is compiled only when a
    # full trace is first asked for (it doubles the code; most deployments never need it).
    full_start: int = 0
    # Some list the code loops over comes from the input: the evaluation's cost grows with it.
    input_loops: bool = False
    # Some code reads the evaluation context `rt` (ExpressionCompiler.uses_context).
    uses_context: bool = True
    # Per rule block `_B<n>` of evaluate_fast: (its first rule's index, the generated line (1-based)
    # each of its rules starts at, the lines [first, end) (0-based) of its twin `_T<n>`).
    blocks: list[tuple[int, tuple[int, ...], int, int]] = field(default_factory=list)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.linemap: list[int] = []
        self.depth = 0

    def line(self, text: str, policy_line: int = 0) -> None:
        self.lines.append("    " * self.depth + text if text else "")
        self.linemap.append(policy_line)

    def indent(self) -> None:
        self.depth += 1

    def dedent(self) -> None:
        self.depth -= 1


class CodeGenerator(TableCodegen, ExpressionCompiler):
    def __init__(self, checked: CheckedPolicy):
        super().__init__()
        self.checked = checked
        self.policy = checked.policy
        self.w = _Writer()
        self.slots: list[tuple[str, str, int]] = []
        self.table_rows: dict[str, tuple[int, list[int]]] = {}
        self.at = 0  # the policy line being generated, for errors
        self.current_rule: ast.Rule | None = None
        self.lazy = False  # evaluate_fast's result lists start as () (see _evaluate)
        # Per rule index, what _rule_code generated for evaluate_fast, replayed for evaluate_full.
        self.rule_code: dict[int, tuple] = {}
        self.fast_blocks: list[tuple[int, list[int]]] = []  # per _B<n>: first rule, the line each rule starts
        self.full_blocks: list[tuple[int, int]] = []  # per _T<n>: its lines (first, end)
        self.chain = chain_lengths(checked.order, checked.deps)
        for name in checked.order:
            symbol = checked.symbols[name]
            self.slot_of[name] = len(self.slots)
            self.slots.append((name, symbol.kind, symbol.node.span.line, symbol.type))
        for name in checked.order:
            if checked.symbols[name].kind == "table":
                table = checked.symbols[name].node
                self.table_rows[name] = (len(self.slots), [r.span.line for r in table.rows])
                self.slots.append((name + "#row", "row", table.span.line, None))

    # ---- statements ----
    def generate(self) -> Generated:
        w = self.w
        checked = self.checked
        for name in checked.order:
            symbol = checked.symbols[name]
            if symbol.kind == "let":
                self._let(name, symbol.node)
            else:
                self._table(name, symbol.node)
        value_paths = [condition_facts(rule.condition, self.slot_of) for rule in self.policy.rules]
        # fired(rule) reads f<index>: False, True once the rule fired, _U when it failed.
        self.referenced = sorted({other.index for rule in self.policy.rules for other in self._references(rule)})
        self.prefetch: str | None = None  # the same for both functions: made once, by the first
        self._evaluate(False, value_paths)
        full_start = len(w.lines)
        self._evaluate(True, value_paths)
        header = [
            f"# Régua generated code for policy {self.policy.name!r} version {checked.version!r}.",
            "# Do not edit: regenerated from the policy source. Lines map back via the linemap.",
        ]
        prologue = header + self.constant_lines + [f"_F{n} = _FN[{name!r}]" for n, name in enumerate(self.functions)]
        if self.fast_blocks:
            prologue.append(f"_FIRED = tuple((k, None) for k in range({len(self.policy.rules)}))")
        prologue.append("")
        source = "\n".join(prologue + w.lines) + "\n"
        linemap = [0] * len(prologue) + w.linemap
        at = len(prologue)
        blocks = [(first_rule, tuple(at + line + 1 for line in starts), at + begin, at + end)
                  for (first_rule, starts), (begin, end) in zip(self.fast_blocks, self.full_blocks, strict=True)]
        return Generated(source, linemap, self.slots, self.connectors, self.functions, value_paths, self.table_rows,
                         full_start + at, reads_input(checked, self.iterated), self.uses_context, blocks)

    def _let(self, name: str, let: ast.Let) -> None:
        w, k, line = self.w, self.slot_of[name], let.span.line
        self.at = line
        w.line(f"def _L{k}(s, i, rt):  # let {name}", line)
        w.indent()
        w.line(f"v = {self.expr(let.value)}", let.value.span.line)
        w.line(f"s[{k}] = v", line)
        w.line("return v", line)
        w.dedent()
        w.line("")

    def _prefetch(self) -> str:
        """Lookups every evaluation needs, whose arguments are plain inputs: started together
        (the statement that does it, or nothing).

        Laziness is kept: a lookup is prefetched only when a rule or output that is always
        evaluated reads it outside any `and`/`or`/`if` branch, so it would be called anyway.
        """
        symbols = self.checked.symbols
        needed: set[str] = set()
        for rule in self.policy.rules:
            needed |= unconditional(rule.condition)
        for output in self.checked.outputs:
            needed |= unconditional(output.value) if output.value is not None else {output.name}
        frontier = list(needed)
        while frontier:
            name = frontier.pop()
            symbol = symbols.get(name)
            if symbol is None or symbol.kind == "input":
                continue
            node = symbol.node
            inner = unconditional(node.value) if symbol.kind == "let" else \
                set().union(*(unconditional(e) for e in node.inputs))
            for found in inner - needed:
                needed.add(found)
                frontier.append(found)
        requests = []
        for name in self.checked.order:
            symbol = symbols[name]
            value = getattr(symbol.node, "value", None)
            if name in needed and symbol.kind == "let" and isinstance(value, ast.Call) and value.namespace \
                    and all(isinstance(a, ast.Literal) or (isinstance(a, ast.Name) and a.ref == "input")
                            for a in value.args):
                index = self.connectors.index(f"{value.namespace}.{value.func}")
                args = "".join(self.expr(a) + ", " for a in value.args)
                requests.append((index, f"({index}, ({args}))"))
        requests = list(dict(((code, index) for index, code in requests)).items())  # the same lookup once
        if len(requests) < 2:
            return ""
        # Prefetching pays only when two or more of these lookups wait on I/O (rt.io, per connector).
        waiting = " + ".join(f"rt.io[{index}]" for _, index in requests)
        return f"if {waiting} > 1:\n    rt.prefetch(({', '.join(code for code, _ in requests)},))"

    def _evaluate(self, full: bool, value_paths: list[tuple]) -> None:
        """`evaluate_fast` / `evaluate_full`. Up to RULE_BLOCK rules are inline; a longer policy
        has its rules in block functions of RULE_BLOCK rules each (`_B<n>` / `_T<n>`), called in
        order: Python's compile() grows faster than linearly with the size of one function."""
        w = self.w
        name = "evaluate_full" if full else "evaluate_fast"
        rules = self.policy.rules
        ordered = [rules[k] for k in self.checked.rule_order] if self.checked.rule_order else rules
        # Rules that read each other's flags share one function's locals: such policies stay inline.
        blocks = [rules[n:n + RULE_BLOCK] for n in range(0, len(rules), RULE_BLOCK)] \
            if len(rules) > RULE_BLOCK and not self.referenced else []
        # evaluate_fast's blocks have no `try` per rule (a fifth of what Python's compile() does
        # for a large policy): when one of their rules fails, the evaluation goes on from the next
        # rule in the block's evaluate_full twin, `_T<n>(..., start)`, each of whose rules has its
        # `try` (engine/blocks.py).
        prefix = "_T" if full else "_B"
        params = "fired, errors, trace, start=0" if full else "fired, errors"
        self.main = True
        for n, block in enumerate(blocks):
            first = len(w.lines)
            w.line(f"def {prefix}{n}(i, s, rt, {params}):", block[0].span.line)
            w.indent()
            self._locals_line()
            starts = []
            for rule in block:
                starts.append(len(w.lines))
                self._rule(rule, full, shared=True, guarded=full, skippable=full)
            self._fill_locals()
            w.dedent()
            w.line("")
            if full:
                self.full_blocks.append((first, len(w.lines)))
            else:
                self.fast_blocks.append((block[0].index, starts))
        w.line(f"def {name}{'(i, s, rt)' if full else hot_path.SIGNATURE}:", 1)
        w.indent()
        self._locals_line()
        if not full:  # evaluate_fast is also PreparedPolicy.evaluate_validated (engine.hot_path)
            for line in hot_path.prologue(len(self.slots)).splitlines():
                w.line(line, 1)
        if self.prefetch is None:
            self.prefetch = self._prefetch()
        for line in self.prefetch.splitlines():
            w.line(line, 1)
        # Without blocks (which append to lists they are handed), evaluate_fast's result lists
        # start as a shared empty tuple and become lists at their first item: most evaluations
        # fire few rules and fail none, and three allocations are a tenth of a small table's time.
        self.lazy = not full and not blocks
        if self.lazy:
            w.line("fired = errors = output_errors = ()", 1)
        else:
            w.line("fired = []", 1)
            w.line("errors = []", 1)
        if full:
            w.line("trace = []", 1)
        if self.referenced:
            w.line(" = ".join(f"f{k}" for k in self.referenced) + " = False", 1)
        if blocks:
            for n, block in enumerate(blocks):
                if full:
                    w.line(f"{prefix}{n}(i, s, rt, fired, errors, trace)", block[0].span.line)
                    continue
                w.line("try:", block[0].span.line)
                w.line(f"    {prefix}{n}(i, s, rt, fired, errors)", block[0].span.line)
                w.line("except Exception as e:", block[0].span.line)
                w.line(f"    _resume({n}, e, i, s, rt, fired, errors)", block[0].span.line)
        else:
            for rule in ordered:
                self._rule(rule, full, shared=False)
        w.line("outputs = {}", 1)
        if not self.lazy:
            w.line("output_errors = []", 1)
        for output in self.checked.outputs:
            line = self.at = output.span.line
            ref = output.value
            if output.value is None:
                ref = ast.Name(output.name, ref=self.checked.symbols[output.name].kind)
            w.line("try:", line)
            w.indent()
            self._hoist([ref], direct=False, shared=bool(blocks))
            w.line(f"outputs[{output.name!r}] = {self.expr(ref)}", line)
            self.known = set()
            w.dedent()
            w.line("except Exception as e:", line)
            w.indent()
            self._append("output_errors", f"({output.name!r}, e)", line)
            w.dedent()
        if full:
            w.line("return fired, errors, outputs, output_errors, trace", 1)
        else:
            for line in hot_path.epilogue(self.checked.default.code).splitlines():
                w.line(line, 1)
        self._fill_locals()
        w.dedent()
        w.line("")
        self.main = False

    def _references(self, rule: ast.Rule) -> list[ast.Rule]:
        """The rules `rule`'s condition reads through fired(rule) or fired(action)."""
        found = []
        if not self.checked.may_call(rule, "fired"):
            return found
        for node in ast.walk(rule.condition):
            if isinstance(node, ast.Call) and node.resolved == "fired":
                found += self._fired_rules(node, rule)
        return found

    def _fired_rules(self, call: ast.Call, rule: ast.Rule) -> list[ast.Rule]:
        arg = call.args[0]
        if arg.ref == "rule":
            return [r for r in self.policy.rules if r.name == arg.name][:1]
        return [r for r in self.policy.rules if r is not rule and r.action.verb == arg.name]

    def visit_Call(self, e: ast.Call) -> str:
        if e.resolved != "fired":
            return super().visit_Call(e)
        # The checker ordered the rules so that those read here already ran (CheckedPolicy.rule_order).
        flags = [f"(f{r.index} if f{r.index} is not _U else _rule_failed({r.name!r}))"
                 for r in self._fired_rules(e, self.current_rule)]
        return "(" + " or ".join(flags) + ")" if flags else "False"

    def _locals_line(self) -> None:
        """A placeholder for `l3 = l7 = _U`, filled by _fill_locals with the locals the function uses."""
        self.used_locals = set()
        self.inlined: set[int] = set()  # tables whose chain this function has inline (_hoist)
        self._locals_at = len(self.w.lines)
        self.w.line("", 1)

    def _fill_locals(self) -> None:
        used = sorted(self.used_locals)
        if used:
            self.w.lines[self._locals_at] = "    " * self.w.depth + " = ".join(f"l{k}" for k in used) + " = _U"

    def _rule(self, rule: ast.Rule, full: bool, shared: bool, guarded: bool = True, skippable: bool = False) -> None:
        """The rule's code; `guarded`: in a try block recording its failure; `skippable`: run only
        from rule `start` on (a block resumed after a failure, see _evaluate)."""
        w = self.w
        r = rule.index
        self.current_rule = rule
        line = self.at = rule.condition.span.line
        w.line(f"# rule {rule.name}", rule.span.line)
        if skippable:
            w.line(f"if start <= {r}:", line)
            w.indent()
        if guarded:
            w.line("try:", line)
            w.indent()
        condition, sets = self._rule_code(rule, shared)
        if full:
            w.line(f"r = {condition}", line)
            w.line(f"trace.append(({r}, r))", line)
            w.line("if r:", line)
        else:
            w.line(f"if {condition}:", line)
        w.indent()
        # The facts behind a fired rule are read later, on demand, from `i` and `s`.
        # In evaluate_fast's blocks, a rule without `set` appends a shared (index, None) of _FIRED:
        # ten thousand tuple constants are a seventh of compile()'s work on a large policy.
        fired = f"_FIRED[{r}]" if not guarded and sets == "None" else f"({r}, {sets})"
        self._append("fired", fired, rule.action.span.line)
        if r in self.referenced:
            w.line(f"f{r} = True", rule.action.span.line)
        w.dedent()
        if not guarded:
            return
        w.dedent()
        w.line("except Exception as e:", line)
        w.indent()
        if r in self.referenced:
            w.line(f"f{r} = _U", line)
        if full:
            w.line(f"trace.append(({r}, e))", line)
        self._append("errors", f"({r}, e)", line)
        w.dedent()
        if skippable:
            w.dedent()

    def _rule_code(self, rule: ast.Rule, shared: bool) -> tuple[str, str]:
        """The rule's hoisted statements (written), its condition and its `set` values.

        evaluate_full has the same rules in the same functions, in the same order, as
        evaluate_fast, so what the first made is replayed for it, at its indentation (statements, and the locals and
        inline tables they account for), not generated a second time (a tenth of a large
        policy's cold compile)."""
        w = self.w
        indent = "    " * w.depth
        made = self.rule_code.get(rule.index)
        if made is not None:
            lines, linemap, condition, sets, used, inlined = made
            w.lines += [indent + text if text else "" for text in lines]
            w.linemap += linemap
            self.used_locals |= used
            self.inlined |= inlined
            return condition, sets
        start, used_before, inlined_before = len(w.lines), set(self.used_locals), set(self.inlined)
        guarded = self._condition(rule)
        self._hoist([rule.condition], shared=shared, evaluated=guarded)
        condition = self.expr(guarded)
        sets = "{" + ", ".join(f"{a.name!r}: {self.expr(a.value)}" for a in rule.sets) + "}" if rule.sets else "None"
        self.known = set()
        cut = len(indent)  # kept without the indentation: evaluate_full's may be deeper
        self.rule_code[rule.index] = ([text[cut:] for text in w.lines[start:]], w.linemap[start:], condition, sets,
                                      self.used_locals - used_before, self.inlined - inlined_before)
        return condition, sets

    def _append(self, name: str, item: str, line: int) -> None:
        """`name.append(item)`, where `name` may still be the empty tuple (see `lazy`)."""
        if not self.lazy:
            self.w.line(f"{name}.append({item})", line)
            return
        self.w.line(f"if {name}:", line)
        self.w.line(f"    {name}.append({item})", line)
        self.w.line("else:", line)
        self.w.line(f"    {name} = [{item}]", line)

    def _condition(self, rule: ast.Rule) -> ast.Expr:
        """The rule's condition, behind the guard the policy kind puts on steps (collection: when due)."""
        guard = KINDS[self.policy.kind].step_guard
        if not rule.is_step or guard is None:
            return rule.condition
        return guard(rule)

    def _hoist(self, exprs, direct: bool = True, shared: bool = False, evaluated=None) -> None:
        """Compute, as plain statements, the lets these expressions always read (no function call).

        `direct`: the lets the expressions read themselves. Lets they always read through other
        lets are hoisted too, in dependency order, when they sit on a chain longer than
        HOIST_CHAIN: then no evaluation recurses deeper than that, however long the chain.

        A `first` (or `priority`) table that the expression `evaluated` (default: the first of
        `exprs`) evaluates before anything else is computed here too, after the lets, as an
        inline if/elif chain: what the expression computed first before, it still computes first
        (the same failure wins, the same lookups are made)."""
        order = {name: n for n, name in enumerate(self.checked.order)}
        symbols = self.checked.symbols
        first = {n for e in exprs for n in unconditional(e) if n in order and symbols[n].kind == "let"}
        hoisted = {n for n in first if direct or self.chain[n] > HOIST_CHAIN}
        frontier = [n for n in first if self.chain[n] > HOIST_CHAIN]
        while frontier:
            for name in unconditional(symbols[frontier.pop()].node.value):
                if name in order and symbols[name].kind == "let" and self.chain[name] > HOIST_CHAIN \
                        and name not in hoisted:
                    hoisted.add(name)
                    frontier.append(name)
        hoisted = sorted(hoisted, key=order.get)
        table = leading_name(exprs[0] if evaluated is None else evaluated)
        # Once per generated function: a later rule finds the value in l<k>, or (the first one
        # failed) computes it through the table's function; the chain is not repeated per rule.
        if table is not None and table.ref == "table" and symbols[table.name].node.hit_policy in ("first", "priority") \
                and self.slot_of[table.name] not in self.inlined:
            self.inlined.add(self.slot_of[table.name])
            hoisted.append(table.name)
        for name in hoisted:
            k = self.slot_of[name]
            node = symbols[name].node
            line = node.span.line
            self.used_locals.add(k)
            self.w.line(f"if l{k} is _U:", line)
            if shared:  # an earlier block (another function) may have computed it already
                self.w.line(f"    l{k} = s[{k}]", line)
                self.w.line(f"    if l{k} is _U:", line)
                self.w.indent()
            if symbols[name].kind == "table":
                self.w.indent()
                self._first_hit(name, node, f"t{k}_", "l{k} = s[{k}] = {value}", None)
                self.w.dedent()
            else:
                self.w.line(f"    l{k} = s[{k}] = {self.expr(node.value)}", line)
            if shared:
                self.w.dedent()
            self.known.add(k)  # set from here to the end of the try block


def generate(checked: CheckedPolicy) -> Generated:
    generator = CodeGenerator(checked)
    try:
        return generator.generate()
    except RecursionError:
        # dsl.limits bounds what recursion sees; should a policy still get here, a located error.
        raise too_deep(checked.policy, generator.at, "this is too deeply nested to compile") from None


def too_deep(policy: ast.Policy, line: int, message: str) -> PolicyError:
    """E006 at the policy line (first column with text), for what Python cannot compile."""
    lines = policy.source.split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    span = Span(line, len(text) - len(text.lstrip()) + 1) if text.strip() else policy.name_span
    return PolicyError([Diagnostic("E006", message + "; split it into `let`s", span, policy.file)], policy.source)


__all__ = ["generate", "Generated", "AGGREGATES"]
