"""Hostile policies: nothing a policy says can become Python code.

The code generator promises that identifiers become positional names and literals are
emitted with repr(); these tests check that promise on the generated source itself
(every Python name in it is a generated one) and by running hostile policies.
"""

from __future__ import annotations

import ast as pyast
import io
import re
import tokenize
import unicodedata
from decimal import Decimal

import pytest

from regua.dsl.diagnostics import PolicyError
from regua.dsl.limits import MAX_LITERAL_CHARS
from regua.engine.compiler import check_source, compile_policy
from regua.engine.connectors import Connectors, Fixture

H = "policy p kind credit\n"
D = "default approve\n"

# Every name the generated module may use: its own helpers and locals, and the few Python
# built-ins aggregates compile to. Anything else would be a policy identifier leaking into code.
GENERATED_NAME = re.compile(
    r"^(i|s|rt|v|e|r|c\d+|t\d+_\d+|v\d+|_e|out|hit|fired|errors|trace|outputs|output_errors"
    r"|l\d+|_[KLFBT]\d+|_FN|_U|_Unavailable|_div|_date_add|_date_sub|_smallest|_largest|_average|_otherwise"
    r"|_no_match|_not_unique|_Decimal|_date|_timedelta|_BusinessDays"
    r"|evaluate_fast|evaluate_full|sum|min|max|any|all|len|Exception"
    # evaluate_fast as evaluate_validated (engine.hot_path): its parameters, locals and constants
    r"|inputs|connectors|as_of|deadline|budget|_h(rules|io|impls|today|calls|index|sets)"
    r"|_hot_[A-Za-z_]+)$"
)
EVALUATE_FAST_PARAMETERS = ("inputs", "connectors", "trace", "as_of", "deadline", "budget", "s", "rt")
GENERATED_ATTRIBUTES = {"lookup", "prefetch", "io", "values", "today", "append", "__class__",
                        "binding", "calls", "decide", "copy", "update", "setdefault"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "open", "getattr", "setattr", "globals", "locals", "vars"}


def python_names(source: str) -> set[str]:
    """Every identifier Python sees in the generated module (not inside strings or comments)."""
    names = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            names.add(token.string)
    return names


def assert_generated_code_is_safe(prepared, policy_identifiers=()):
    source = prepared.meta.generated_source
    tree = pyast.parse(source)
    for node in pyast.walk(tree):
        assert not isinstance(node, (pyast.Import, pyast.ImportFrom, pyast.Global, pyast.Nonlocal,
                                     pyast.ClassDef, pyast.AsyncFunctionDef, pyast.Await, pyast.Delete)), \
            pyast.dump(node)
        if isinstance(node, pyast.Name):
            assert GENERATED_NAME.match(node.id), f"policy text leaked into code as a name: {node.id!r}"
            assert node.id not in FORBIDDEN_CALLS
        elif isinstance(node, pyast.FunctionDef):
            assert node.name in ("evaluate_fast", "evaluate_full") or re.fullmatch(r"_[LBT]\d+", node.name)
            for arg in node.args.args:  # rule blocks (_B<n>, _T<n>) also take the result lists
                assert arg.arg in ("s", "i", "rt") or (node.name[1] in "BT" and arg.arg in ("fired", "errors", "trace")) \
                    or (node.name == "evaluate_fast" and arg.arg in EVALUATE_FAST_PARAMETERS)
        elif isinstance(node, pyast.arg):
            assert arg_is_generated(node.arg)
        elif isinstance(node, pyast.Attribute):
            assert node.attr in GENERATED_ATTRIBUTES, f"unexpected attribute .{node.attr}"
        elif isinstance(node, pyast.keyword):
            assert node.arg == "days"  # _timedelta(days=N), the only keyword argument emitted
    keywords = {"def", "return", "if", "elif", "else", "not", "in", "is", "and", "or", "for", "try", "except", "as",
                "True", "False", "None", "lambda"}
    tokens = python_names(source) - keywords
    for name in tokens:
        assert GENERATED_NAME.match(name) or name in GENERATED_ATTRIBUTES or name == "days", name
    for identifier in policy_identifiers:
        if not GENERATED_NAME.match(identifier):
            assert identifier not in tokens
    # No raw control or line-separator characters: every text went through repr().
    for char in source:
        if char != "\n":
            assert unicodedata.category(char) not in ("Cc", "Zl", "Zp", "Cs"), repr(char)
    compile(source, "<check>", "exec")


def arg_is_generated(name: str) -> bool:
    return name in ("s", "i", "rt") or name in EVALUATE_FAST_PARAMETERS or bool(re.fullmatch(r"v\d+|_e", name))


def run(source: str, data=None, **kwargs):
    prepared = compile_policy(source)
    return prepared, prepared.evaluate(data or {}, **kwargs)


HOSTILE_TEXTS = [
    "__import__('os').system('echo pwned')",
    "\"); import os #",
    "'); import os #",
    "\\",
    "\\\\",
    "\"\"\"",
    "'''",
    "a\nb",
    "\t\ttab",
    "\x00nul",
    "\x01\x7f\x1b[31m",
    "line\u2028separator\u2029para\x85next",
    "{0.__class__}",
    "%s %(x)s",
    "${jndi:ldap://x}",
    "🙂 ação",
    "x" * 5000,
]


def policy_literal(text: str) -> str:
    """`text` written as a policy string literal (escapes for quote, backslash, newline, tab)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_hostile_strings_are_data_everywhere(text):
    literal = policy_literal(text)
    source = (
        f"policy p kind credit version {literal}\n"
        f"description {literal}\n"
        "input\n  t: text\n"
        f"let s = {literal}\n"
        f"let eq = t == {literal}\n"
        f"let inside = t in [{literal}, \"other\"]\n"
        f"let rec = {{chave: {literal}}}\n"
        f"table tb (first) by t\n  {literal} -> 1\n  else -> 2\n"
        "rule r\n  when eq\n"
        f"  deny {literal} {literal}\n"
        f"default approve {literal} {literal}\n"
        "output s, eq, inside, rec, tb\n"
        f"test {literal}\n  given\n    t = {literal}\n  expect deny\n  expect reasons {literal}\n"
    )
    prepared, decision = run(source, {"t": text})
    assert_generated_code_is_safe(prepared)
    assert decision.outcome == "deny"
    assert decision.outputs == {"s": text, "eq": True, "inside": True, "rec": {"chave": text}, "tb": 1}
    assert decision.reasons[0].code == text
    assert decision.reasons[0].message == text
    assert prepared.meta.version == text
    assert prepared.meta.description == text
    assert decision.to_dict()["outputs"]["s"] == text
    import json

    assert json.loads(json.dumps(decision.to_dict()))["reasons"][0]["message"] == text
    # Same policy, other input: the default action keeps its hostile texts as data too.
    other = prepared.evaluate({"t": "benign"})
    assert other.outcome == "approve"
    assert other.reason_codes == [text]
    assert other.outputs["tb"] == 2
    # The policy's own test block runs with the hostile test name.
    from regua.dsl.checker import check
    from regua.dsl.parser import parse
    from regua.engine.builtins import default_environment
    from regua.engine.testing import run_policy_tests

    checked = check(parse(source), default_environment())
    report = run_policy_tests(checked, prepared)
    assert [(c.name, c.passed) for c in report.cases] == [(text, True)]


def test_injection_attempts_have_no_side_effects(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    source = (
        H + "input\n  t: text\n"
        f"let a = {policy_literal(payload)}\n"
        f"let b = {policy_literal(chr(34) + '); ' + payload + ' #')}\n"
        f"let c = {policy_literal(chr(39) * 3 + payload + chr(39) * 3)}\n"
        f"let d = {policy_literal(chr(10) + payload + chr(10))}\n"
        "rule r\n  when t == a or t == b\n"
        f"  review {policy_literal(payload)} {policy_literal(payload)}\n"
        + D + "output a, b, c, d\n"
    )
    prepared, decision = run(source, {"t": payload})
    assert_generated_code_is_safe(prepared)
    prepared.evaluate({"t": "x"}, trace="full")
    assert not marker.exists()
    assert decision.outcome == "review"
    assert decision.outputs["a"] == payload
    assert decision.outputs["c"] == "'''" + payload + "'''"
    assert decision.outputs["d"] == "\n" + payload + "\n"


# Names that collide with the generated code's own names, Python built-ins and keywords of Python
# (but not of the policy language), or are dunder names.
HOSTILE_IDENTIFIERS = ["s", "i", "rt", "v", "e", "r", "v0", "c0", "_L0", "_K0", "_F0", "_U", "_FN", "_div", "out",
                       "fired", "outputs", "__import__", "__builtins__", "__class__", "eval", "exec", "open", "sum",
                       "len", "Exception", "lambda", "def", "import", "None", "True", "class", "yield"]


def test_identifiers_that_look_like_python_or_generated_names_are_data():
    fields = "".join(f"  {name}: int\n" for name in HOSTILE_IDENTIFIERS)
    lets = "".join(f"let l_{n} = {name} * 10 + {n}\n" for n, name in enumerate(HOSTILE_IDENTIFIERS))
    records = "let rec = {" + ", ".join(f"{name}: {name}" for name in HOSTILE_IDENTIFIERS) + "}\n"
    access = "let via_record = rec.__class__ + rec.s + rec.eval\n"
    source = H + "input\n" + fields + lets + records + access + D + "output " + ", ".join(
        [f"l_{n}" for n in range(len(HOSTILE_IDENTIFIERS))] + ["rec", "via_record"]) + "\n"
    data = {name: n + 1 for n, name in enumerate(HOSTILE_IDENTIFIERS)}
    prepared, decision = run(source, data)
    assert_generated_code_is_safe(prepared)
    for n, _name in enumerate(HOSTILE_IDENTIFIERS):
        assert decision.outputs[f"l_{n}"] == (n + 1) * 10 + n
    assert decision.outputs["rec"] == data
    assert decision.outputs["via_record"] == data["__class__"] + data["s"] + data["eval"]


def test_lets_and_tables_named_like_generated_names():
    names = ["s", "rt", "i", "_L0", "_K1", "v0", "__import__"]
    lets = "".join(f"let {name} = x + {n}\n" for n, name in enumerate(names))
    table = "table e (first) by s\n  < 0 -> rt\n  else -> _L0 + __import__\n"
    comprehension = "let total = sum(v0 + s for s in [1, 2, 3])\n"  # a local named like a let
    source = H + "input\n  x: int\n" + lets + table + comprehension + D + "output " + ", ".join(names) + ", e, total\n"
    prepared, decision = run(source, {"x": 100})
    assert_generated_code_is_safe(prepared, names)
    assert decision.outputs == {"s": 100, "rt": 101, "i": 102, "_L0": 103, "_K1": 104, "v0": 105, "__import__": 106,
                                "e": 103 + 106, "total": 105 * 3 + 6}


def test_policy_identifiers_never_appear_as_python_names():
    identifiers = ["renda_mensal", "ação_crítica", "limite_aprovado", "faixa_score", "regra_um", "Registro",
                   "campo_x", "tabela_y", "política_hostil"]
    source = (
        "policy política_hostil kind credit\n"
        "record Registro\n  campo_x: int\n"
        "input\n  renda_mensal: money\n  registros: list of Registro\n"
        "let ação_crítica = renda_mensal * 2\n"
        "let limite_aprovado = sum(r.campo_x for r in registros where r.campo_x > 0)\n"
        "table tabela_y (first) by limite_aprovado\n  < 10 -> 1\n  else -> 2\n"
        "let faixa_score = tabela_y + count(registros.campo_x)\n"
        "rule regra_um\n  when ação_crítica > 100 BRL and faixa_score > 1\n  deny \"A\" \"b\"\n"
        + D + "output ação_crítica, faixa_score\n"
    )
    prepared, decision = run(source, {"renda_mensal": "60", "registros": [{"campo_x": 5}, {"campo_x": 7}]})
    assert_generated_code_is_safe(prepared, identifiers)
    assert decision.outcome == "deny"
    assert decision.outputs == {"ação_crítica": Decimal("120"), "faixa_score": 4}


def test_very_long_identifiers_and_strings():
    # As long as the literal limit (dsl/limits.py, E007) allows: the generated code stays safe.
    name = "nome_" + "á" * (MAX_LITERAL_CHARS - 10)
    text = "z" * MAX_LITERAL_CHARS
    source = H + f"input\n  {name}: int\nlet {name}_2 = {name} + 1\nlet t = \"{text}\"\n" + D + f"output {name}_2, t\n"
    prepared, decision = run(source, {name: 1})
    assert_generated_code_is_safe(prepared, [name])
    assert decision.outputs == {f"{name}_2": 2, "t": text}


def test_a_name_or_text_past_the_literal_limit_is_a_located_error():
    for long in ("nome_" + "á" * MAX_LITERAL_CHARS, '"' + "z" * (MAX_LITERAL_CHARS + 1) + '"'):
        source = H + f"input\n  valor: int\nlet x = {long}\n" + D + "output x\n"
        with pytest.raises(PolicyError) as info:
            run(source, {"valor": 1})
        (error,) = [d for d in info.value.diagnostics if d.code == "E007"]
        assert error.span.line == source.count("\n", 0, source.index(long)) + 1


CONFUSABLES = [
    ("fi", "\ufb01"),  # ﬁ ligature
    ("fi", "\uff46\uff49"),  # fullwidth ｆｉ
    ("fi", "\U0001d41f\U0001d422"),  # mathematical bold 𝐟𝐢
    ("K", "\u212a"),  # Kelvin sign
    ("ao", "\u00aa" + "o"),  # feminine ordinal ª -> a
    ("x1", "x\u00b9"),  # superscript one
]


@pytest.mark.parametrize("plain, confusable", CONFUSABLES)
def test_nfkc_confusable_identifiers_do_not_collide(plain, confusable):
    assert unicodedata.normalize("NFKC", confusable) == plain  # Python would see the same identifier
    source = (
        H + f"input\n  {plain}: int\n  {confusable}: int\n"
        f"let a_{plain} = {plain} * 10\nlet a_{confusable} = {confusable} * 100\n"
        f"let r = {{{plain}: 1, {confusable}: 2}}\n"
        + D + f"output a_{plain}, a_{confusable}, r\n"
    )
    try:
        prepared = compile_policy(source)
    except PolicyError as error:
        # Rejecting a confusable name outright is also safe; silently merging the two is not.
        assert {d.code for d in error.diagnostics} <= {"E002", "E102"}, error.render()
        return
    decision = prepared.evaluate({plain: 1, confusable: 2})
    assert decision.outputs == {f"a_{plain}": 10, f"a_{confusable}": 200, "r": {plain: 1, confusable: 2}}
    assert_generated_code_is_safe(prepared, [plain, confusable])
    # The input schema keeps both names apart.
    assert [f.name for f in prepared.meta.input_type.fields] == [plain, confusable]


@pytest.mark.parametrize(
    "call",
    ["__import__(\"os\")", "eval(\"1\")", "exec(\"x = 1\")", "open(\"/etc/passwd\")", "getattr(x, \"real\")",
     "globals()", "print(x)", "compile(\"1\", \"f\", \"eval\")", "breakpoint()", "_div(1, 0)", "_FN()"],
)
def test_a_policy_cannot_call_arbitrary_functions(call):
    source = H + f"input\n  x: int\nlet y = {call}\n" + D
    with pytest.raises(PolicyError) as info:
        check_source(source)
    found = info.value.diagnostics
    assert [d.code for d in found] == ["E106"]
    assert found[0].span.line == 4


@pytest.mark.parametrize("call", ["os.system(\"ls\")", "subprocess.run(\"ls\")", "bureau.__init__(x)",
                                  "builtins.eval(\"1\")"])
def test_a_policy_cannot_reach_modules_through_lookups(call):
    source = H + f"input\n  x: int\nlet y = {call}\n" + D
    with pytest.raises(PolicyError) as info:
        check_source(source)
    assert [d.code for d in info.value.diagnostics] == ["E105"]


@pytest.mark.parametrize(
    "access",
    ["x.__class__", "x.real", "t.upper", "d.year", "r.__class__", "r.__dict__", "r.score.__globals__",
     "r.restrictions.__len__", "{a: 1}.__class__", "[1].__len__", "r.keys"],
)
def test_a_policy_cannot_read_attributes_outside_its_record_types(access):
    source = H + f"input\n  x: int\n  t: text\n  d: date\n  c: cnpj\nlet r = bureau.serasa(c)\nlet y = {access}\n" + D
    with pytest.raises(PolicyError) as info:
        check_source(source)
    found = info.value.diagnostics
    assert [d.code for d in found] == ["E107"]
    assert found[0].span.line == 8


def test_record_keys_named_like_attributes_are_plain_data():
    source = H + "let r = {__class__: 1, __dict__: 2, keys: 3}\nlet y = r.__class__ + r.__dict__ + r.keys\n" + D \
        + "output y\n"
    prepared, decision = run(source)
    assert_generated_code_is_safe(prepared)
    assert decision.outputs == {"y": 6}


def test_hostile_connector_answers_stay_data():
    payload = "__import__('os').system('echo pwned')"
    source = (
        H + "input\n  c: cnpj\nlet r = bureau.serasa(c)\n"
        "let credores = count(x for x in r.restrictions where x.creditor == \"\\\"); import os #\")\n"
        + D + "output credores, banda = r.score.band\n"
    )
    answer = {"score": {"value": 1, "band": payload},
              "restrictions": [{"kind": "pefin", "amount": "1.00", "date": "2026-01-01",
                                "creditor": "\"); import os #"}]}
    prepared, decision = run(source, {"c": "11.222.333/0001-81"},
                             connectors=Connectors({"bureau.serasa": Fixture(answer)}))
    assert_generated_code_is_safe(prepared)
    assert decision.outputs == {"credores": 1, "banda": payload}


def test_hostile_input_keys_are_rejected_not_executed():
    prepared = compile_policy(H + "input\n  x: int\n" + D)
    from regua.engine.prepared import InvalidInput

    with pytest.raises(InvalidInput) as info:
        prepared.evaluate({"x": 1, "__import__('os')": 1, "'); x #": 2})
    assert {e.code for e in info.value.errors} == {"UNKNOWN_FIELD"}


def test_example_policy_generated_code_is_safe():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "policies" / "credito_b2b.regua"
    prepared = compile_policy(path.read_text(encoding="utf-8"), str(path))
    checked = check_source(path.read_text(encoding="utf-8"))
    identifiers = [name for name in checked.symbols] + [r.name for r in checked.policy.rules]
    assert_generated_code_is_safe(prepared, identifiers)
