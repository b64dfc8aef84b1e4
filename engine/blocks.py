"""A failure in a rule block of `evaluate_fast`: record it and go on with the block's next rule.

A policy with more than codegen.RULE_BLOCK rules has its rules in block functions `_B<n>`. They
have no `try` per rule: on a large policy those handlers are a fifth of Python's compile() of the
generated code, and rules seldom fail. When one does, the exception leaves the block, and
evaluate_fast hands it here: the traceback's line in `_B<n>` says which rule failed (the rules of
a block are consecutive); its failure is recorded, and the rules after it run in the block's
evaluate_full twin `_T<n>` (each rule in its own `try`), from that rule on. The lets and tables
computed so far are in the slots `s`, so nothing runs twice. The decision is what per-rule `try`
blocks gave: the same fired rules, failures and outputs, in the same order.
"""

from __future__ import annotations

import threading
from bisect import bisect_right


def block_resumer(namespace: dict, meta):
    """`_resume(n, error, i, s, rt, fired, errors)` for the generated code in `namespace`."""
    blocks, filename = meta.blocks, meta.code_filename
    lines: list[list[str]] = []  # the generated source split into lines, once, at the first failure
    lock = threading.Lock()

    def careful(n: int):
        """`_T<n>`, compiled on first use unless evaluate_full (which has it) already was."""
        function = namespace.get(f"_T{n}")
        if function is None:
            with lock:
                if not lines:
                    lines.append(meta.generated_source.split("\n"))
                _, _, begin, end = blocks[n]
                # Padded with blank lines: the line numbers (and the linemap) stay those of the source.
                text = "\n" * begin + "\n".join(lines[0][begin:end])
                scope: dict = {}
                exec(compile(text, filename, "exec"), namespace, scope)  # noqa: S102 — generated code
                function = namespace.setdefault(f"_T{n}", scope[f"_T{n}"])
        return function

    def resume(n: int, error: Exception, inputs, slots, rt, fired: list, errors: list) -> None:
        first, starts, _, _ = blocks[n]
        name, start = f"_B{n}", first
        tb = error.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_name == name and code.co_filename == filename:
                position = bisect_right(starts, tb.tb_lineno) - 1
                if position >= 0:  # else: no rule had started (cannot happen); the block runs from its start
                    errors.append((first + position, error))
                    start = first + position + 1
                break
            tb = tb.tb_next
        careful(n)(inputs, slots, rt, fired, errors, [], start)

    return resume
