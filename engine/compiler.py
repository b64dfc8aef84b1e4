"""The compile pipeline: text -> AST -> checked policy -> generated Python -> PreparedPolicy.

Compiled artifacts are cached by a hash of the source, the environment's signatures and
the compiler version: in memory always, and on disk when a cache folder is given (the
generated code is stored as a marshalled code object, so a warm start skips parsing,
checking, code generation and even Python's own compile step).
"""

from __future__ import annotations

import gc
import hashlib
import marshal
import os
import pickle
import sys
import tempfile
import threading
import types
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from regua.dsl.diagnostics import PolicyError
from regua.dsl.source import read_policy

from .prepared import ActionMeta, PolicyMeta, PreparedPolicy, RuleMeta

if TYPE_CHECKING:
    from regua.dsl.checker import CheckedPolicy
    from regua.dsl.environment import Environment

# The parser (lark), the checker, code generation and the built-in environment (holidays) are
# imported when a policy is actually compiled: a warm start from the disk cache needs none of them.


def _compiler_version() -> str:
    """Changes whenever the language or the engine's code does, so caches never outlive it."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for folder in ("dsl", "engine"):
        for path in sorted((root / folder).glob("*.py")) + sorted((root / folder).glob("*.lark")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


COMPILER_VERSION = _compiler_version()
#: Compiled policies kept in memory, least recently used first out. A server keeps the versions
#: it runs referenced itself; this cache only spares recompiling the recently used others
#: (rollbacks, re-publishes, the lab). An older version is compiled again when asked for (from the
#: disk cache when `policies.cache_dir` is set). Each costs ~0.2 MB, so it stays small.
MEMORY_CACHE_SIZE = 16
_MEMORY: OrderedDict[str, PreparedPolicy] = OrderedDict()
_MEMORY_LOCK = threading.Lock()


def _remember(digest: str, prepared: PreparedPolicy) -> None:
    with _MEMORY_LOCK:
        _MEMORY[digest] = prepared
        _MEMORY.move_to_end(digest)
        while len(_MEMORY) > MEMORY_CACHE_SIZE:
            _MEMORY.popitem(last=False)


def _recall(digest: str) -> PreparedPolicy | None:
    with _MEMORY_LOCK:
        prepared = _MEMORY.get(digest)
        if prepared is not None:
            _MEMORY.move_to_end(digest)
        return prepared


def source_hash(source: str, env: Environment) -> str:
    digest = hashlib.sha256()
    for part in (COMPILER_VERSION, sys.version.split()[0], env.fingerprint(), source):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def check_source(source: str, file: str = "<policy>", env: Environment | None = None) -> CheckedPolicy:
    """Parse and check; raises PolicyError with every diagnostic."""
    from regua.dsl.checker import check
    from regua.dsl.parser import parse

    from .builtins import default_environment

    return check(parse(source, file), env or default_environment())


def _action(checked: CheckedPolicy, action) -> ActionMeta:
    return ActionMeta(action.verb, action.code, action.message, checked.severities.get(action.verb, 0))


def build_artifact(checked: CheckedPolicy, digest: str):
    """Stages after checking: rule graph, code generation, Python compile, metadata."""
    from .actionable import actionable_specs
    from .codegen import generate, too_deep
    from .graph import build_graph
    from .projection import connector_paths, project

    graph = build_graph(checked)
    generated = generate(checked)
    # The fields each connector's answer needs; a policy that calls none needs no walk of its code.
    paths = connector_paths(checked) if generated.connectors else {}
    policy = checked.policy
    filename = f"<regua {policy.name} {digest[:12]}>"
    main_source = _first_lines(generated.source, generated.full_start)
    try:
        code = compile(main_source, filename, "exec")
    except (SyntaxError, RecursionError, MemoryError) as error:
        # The checks of dsl.limits should make this unreachable; if not, a located error, not a crash.
        lineno = getattr(error, "lineno", None) or 0
        line = generated.linemap[lineno - 1] if 0 < lineno <= len(generated.linemap) else 0
        raise too_deep(policy, line, f"the generated code is beyond Python's limits ({error})") from None
    meta = PolicyMeta(
        name=policy.name,
        kind=policy.kind,
        version=checked.version,
        description=policy.description,
        file=policy.file,
        source_hash=digest,
        input_type=checked.input_type,
        rules=[RuleMeta(r.name, r.span.line, _action(checked, r.action), tuple(a.name for a in r.sets),
                        _handles(checked, r), r.day) for r in policy.rules],
        default=_action(checked, checked.default),
        on_error=_action(checked, checked.on_error),
        outputs=[(o.name, o.type) for o in checked.outputs],
        connectors=[replace(spec, returns=project(spec.returns, paths.get(spec.qualified_name, set())))
                    for spec in (checked.environment.connectors[name] for name in generated.connectors)],
        slots=generated.slots,
        value_paths=generated.value_paths,
        table_rows=generated.table_rows,
        linemap=generated.linemap,
        code_filename=filename,
        generated_source=generated.source,
        functions=generated.functions,
        warnings=checked.warnings,
        graph=graph.to_dict(),
        full_start=generated.full_start,
        blocks=generated.blocks,
        input_loops=generated.input_loops,
        uses_context=generated.uses_context,
        actionable=actionable_specs(checked),
    )
    return meta, code


def _first_lines(text: str, count: int) -> str:
    """The first `count` lines of `text`, each with its newline (without splitting the whole text
    into lines: a large policy's generated code has ~150,000)."""
    end = 0
    for _ in range(count):
        end = text.index("\n", end) + 1
    return text[:end]


def _handles(checked: CheckedPolicy, rule) -> tuple[str, ...]:
    """Connectors whose availability the rule's condition tests with available(x)."""
    from regua.dsl import ast
    from regua.dsl.ast import walk

    found = []
    if not checked.may_call(rule, "available"):
        return ()
    for node in walk(rule.condition):
        if isinstance(node, ast.Call) and node.resolved == "available" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Name) and arg.name in checked.symbols:
                arg = getattr(checked.symbols[arg.name].node, "value", arg)
            if isinstance(arg, ast.Call) and arg.namespace is not None:
                found.append(f"{arg.namespace}.{arg.func}")
    return tuple(found)


def compile_policy(source: str, file: str = "<policy>", env: Environment | None = None,
                   cache_dir: str | Path | None = None) -> PreparedPolicy:
    """Compile policy text into a PreparedPolicy, using the caches when they hold it."""
    if env is None:
        from .builtins import default_environment

        env = default_environment()
    digest = source_hash(source, env)
    cached = _recall(digest)
    if cached is not None and cached.meta.file == file:
        return cached
    prepared = _load_from_disk(cache_dir, digest, env) if cache_dir else None
    if prepared is None:
        # Compiling allocates millions of long-lived objects and frees no cycles: the cyclic
        # collector would only re-scan them (~10-30 % of a cold compile). It runs again afterwards.
        collecting = gc.isenabled()
        gc.disable()
        from regua.dsl.checker import check
        from regua.dsl.parser import parse

        try:
            meta, code = build_artifact(check(parse(source, file), env), digest)
            # Built before the collector runs again, and with the syntax tree already freed (by
            # reference counting): its first pass would otherwise scan every object the compile
            # made (~0.3 s for 10,000 rules), the tree included.
            prepared = PreparedPolicy(meta, code, env.functions)
        finally:
            if collecting:
                gc.enable()
        if cache_dir:
            _store_on_disk(cache_dir, digest, meta, code)
    _remember(digest, prepared)
    return prepared


def compile_file(path: str | Path, env: Environment | None = None, cache_dir: str | Path | None = None) -> PreparedPolicy:
    path = Path(path)
    return compile_policy(read_policy(path), str(path), env, cache_dir)


def clear_memory_cache() -> None:
    with _MEMORY_LOCK:
        _MEMORY.clear()


_MAGIC = b"REGC1\0"


def _load_from_disk(cache_dir, digest: str, env: Environment) -> PreparedPolicy | None:
    """A cached artifact, or None when absent or damaged in any way (then we simply recompile).

    The folder must be private to the service: like any code cache it is trusted. The checksum
    guards against corruption (a damaged marshal blob can crash the interpreter), not forgery.
    """
    path = Path(cache_dir) / f"{digest}.regc"
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    header = len(_MAGIC) + 32 + 8
    if len(blob) < header or not blob.startswith(_MAGIC):
        return None
    checksum = blob[len(_MAGIC):len(_MAGIC) + 32]
    payload = blob[len(_MAGIC) + 32:]
    if hashlib.sha256(payload).digest() != checksum:
        return None
    try:
        meta_size = int.from_bytes(payload[:8], "big")
        meta = pickle.loads(payload[8:8 + meta_size])  # noqa: S301 — our own checksummed cache
        code = marshal.loads(payload[8 + meta_size:])
        if not isinstance(meta, PolicyMeta) or not isinstance(code, types.CodeType) or meta.source_hash != digest:
            return None
        return PreparedPolicy(meta, code, env.functions)
    except Exception:  # noqa: BLE001 — any damage means "not cached"
        return None


def _store_on_disk(cache_dir, digest: str, meta: PolicyMeta, code) -> None:
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    meta_blob = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    payload = len(meta_blob).to_bytes(8, "big") + meta_blob + marshal.dumps(code)
    blob = _MAGIC + hashlib.sha256(payload).digest() + payload
    # Write then rename: a crash never leaves a half-written cache entry behind.
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(blob)
    os.replace(tmp, folder / f"{digest}.regc")


__all__ = ["compile_policy", "compile_file", "check_source", "PolicyError", "PreparedPolicy"]
