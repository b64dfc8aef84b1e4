"""dsl.lark_runtime: the per-token loops of Lark's LALR parser written out. What it changes of
Lark's data must mean the same: the reworked parse table, and the tokens the lexer makes."""

from __future__ import annotations

from lark import Token
from lark.parsers.lalr_analysis import Shift

from regua.dsl import lark_runtime, parser
from regua.dsl.ast_builder import PASS


def _fast_parser():
    return parser._lark().parser.parser.parser


def test_the_reworked_parse_table_has_every_action_of_larks():
    fast_parser = _fast_parser()
    table, callbacks = fast_parser.parse_table, fast_parser.callbacks
    fast = lark_runtime._fast_states(table, callbacks)
    assert fast is lark_runtime._fast_states(table, callbacks)  # made once per table
    assert fast.keys() == table.states.keys()
    reductions = passes = 0
    for state, actions in table.states.items():
        assert fast[state].keys() == actions.keys()
        for name, (action, arg) in actions.items():
            if action is Shift:
                assert fast[state][name] == (True, arg)
            else:
                reductions += 1
                passes += callbacks[arg] is PASS
                assert fast[state][name] == (False, (callbacks[arg] is PASS, callbacks[arg], len(arg.expansion),
                                                     arg.origin.name))
    assert reductions and passes


def test_the_lexers_tokens_are_larks(monkeypatch):
    made = []
    real = parser.PolicyIndenter._indent

    def spy(self, stream):
        for token in real(self, stream):
            made.append(token)
            yield token

    monkeypatch.setattr(parser.PolicyIndenter, "_indent", spy)
    parser.parse('policy p kind credit version "1"\n\ninput\n  a: int\n\nrule r\n  when a > 1\n  deny "D" "d"\n'
                 "\ndefault approve\n")
    deny = next(t for t in made if t == "deny")
    assert isinstance(deny, Token)
    expected = Token(deny.type, "deny", deny.start_pos, 8, 3, 8, 7, deny.start_pos + 4)
    assert [getattr(deny, k) for k in Token.__slots__] == [getattr(expected, k) for k in Token.__slots__]
    assert (deny.line, deny.column, deny.end_line, deny.end_column) == (8, 3, 8, 7)
