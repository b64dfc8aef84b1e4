"""Lark's LALR runtime with its per-token loops written out, for large policies (issue 14).

Both classes are plugged in through Lark's `_plugins` option (the hook its Cython plugin uses) and
do what the classes they extend do, step for step, with fewer calls: the same scanner for the same
parser state, the same tokens and keyword callbacks, the same parse table, the same errors (raised
by Lark's own code where a match or a table look-up fails). What they skip: method and property
calls per token, and for a `?a: b` reduction (a quarter of a million in a 10,000-rule policy) the
list slicing and callback call whose result is the value already on the stack.
"""

from __future__ import annotations

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from lark.lexer import ContextualLexer
from lark.parsers.lalr_analysis import IntParseTable, Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser import LALR_Parser, _Parser
from lark.parsers.lalr_parser_state import ParseConf, ParserState

from .ast_builder import PASS


class FastContextualLexer(ContextualLexer):
    """ContextualLexer.lex with BasicLexer.next_token, Scanner.match and LineCounter.feed inline."""

    def lex(self, lexer_state, parser_state):
        try:
            yield from self._lex(lexer_state, parser_state)
        except UnexpectedCharacters as e:  # as ContextualLexer.lex: say which token was not expected
            try:
                last_token = lexer_state.last_token
                token = self.root_lexer.next_token(lexer_state, parser_state)
                raise UnexpectedToken(token, e.allowed, state=parser_state, token_history=[last_token],
                                      terminals_by_name=self.root_lexer.terminals_by_name) from None
            except UnexpectedCharacters:
                raise e from None

    def _plan(self, lexer):
        scanner = lexer.scanner  # built on first use; it also sets lexer.callback
        return scanner._mres, lexer.ignore_types, lexer.callback, lexer.newline_types

    def _lex(self, lexer_state, parser_state):
        lexers = self.lexers
        plans: dict = {}
        line_ctr = lexer_state.line_ctr
        text, end = lexer_state.text.text, lexer_state.text.end
        # Token(type, value, ...) is Token.__new__ calling Token._future_new: two Python calls per
        # token for what str.__new__ and the slot assignments below do.
        new_str = str.__new__
        while True:
            lexer = lexers[parser_state.state_stack[-1]]  # ParserState.position
            plan = plans.get(id(lexer))
            if plan is None:
                plan = plans[id(lexer)] = self._plan(lexer)
            mres, ignore_types, callback, newline_types = plan
            while True:  # BasicLexer.next_token
                pos = line_ctr.char_pos
                if pos >= end:
                    return
                for mre in mres:
                    match = mre.match(text, pos, end)
                    if match:
                        break
                else:
                    lexer.next_token(lexer_state, parser_state)  # raises UnexpectedCharacters
                    raise AssertionError("the scanners disagree")
                value, type_ = match.group(0), match.lastgroup
                ignored = type_ in ignore_types
                token = None
                if not ignored or type_ in callback:
                    token = new_str(Token, value)
                    token.type, token.start_pos, token.value = type_, pos, value
                    token.line, token.column = line_ctr.line, line_ctr.column
                if type_ in newline_types:  # LineCounter.feed
                    newlines = value.count("\n")
                    if newlines:
                        line_ctr.line += newlines
                        line_ctr.line_start_pos = pos + value.rindex("\n") + 1
                line_ctr.char_pos = pos = pos + len(value)
                line_ctr.column = pos - line_ctr.line_start_pos + 1
                if token is not None:
                    token.end_line = line_ctr.line
                    token.end_column = line_ctr.column
                    token.end_pos = pos
                    if type_ in callback:
                        token = callback[type_](token)
                    if not ignored:
                        lexer_state.last_token = token
                        break
            yield token


class FastParserState(ParserState):
    """ParserState.feed_token, with `?a: b` reductions done in place, on the table of _fast_states."""

    __slots__ = ()

    def feed_token(self, token: Token, is_end=False):
        state_stack = self.state_stack
        value_stack = self.value_stack
        conf = self.parse_conf
        states, end_state, callbacks = conf.states, conf.end_state, conf.callbacks
        token_type = token.type
        while True:
            state = state_stack[-1]
            try:
                shift, arg = states[state][token_type]
            except KeyError:
                expected = {s for s in states[state].keys() if s.isupper()}
                raise UnexpectedToken(token, expected, state=self, interactive_parser=None) from None
            if shift:
                assert not is_end
                state_stack.append(arg)
                value_stack.append(token if token_type not in callbacks else callbacks[token_type](token))
                return
            passes, callback, size, origin = arg
            if passes:
                del state_stack[-1]  # the value of `?a: b` is b's, already on the stack
            else:
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(callback(children) if callback is not None else children)
            state_stack.append(states[state_stack[-1]][origin][1])
            if is_end and state_stack[-1] == end_state:
                return value_stack[-1]


# Per parse table (by id, with the table and callbacks kept to check it is still the same).
_FAST_STATES: dict[int, tuple] = {}


def _fast_states(parse_table, callbacks) -> dict:
    """The parse table's actions as (shift?, argument), a reduction's argument worked out once per
    rule: (`?a: b`?, callback or None, length, origin name). Per token, feed_token then neither
    hashes the grammar rule (twice: Rule.__hash__ is a Python call) nor reads its attributes."""
    states = parse_table.states
    cached = _FAST_STATES.get(id(states))
    if cached is not None and cached[0] is states and cached[1] is callbacks:
        return cached[2]
    reductions: dict = {}
    fast = {}
    for state, actions in states.items():
        row = {}
        for name, (action, arg) in actions.items():
            if action is Shift:
                row[name] = (True, arg)
                continue
            reduction = reductions.get(arg)
            if reduction is None:
                callback = callbacks[arg] if callbacks else None
                reduction = reductions[arg] = (callback is PASS, callback, len(arg.expansion), arg.origin.name)
            row[name] = (False, reduction)
        fast[state] = row
    _FAST_STATES[id(states)] = (states, callbacks, fast)
    return fast


class _FastParser(_Parser):
    def parse(self, lexer, start, value_stack=None, state_stack=None, start_interactive=False):
        conf = ParseConf(self.parse_table, self.callbacks, start)
        conf.states = _fast_states(self.parse_table, self.callbacks)
        parser_state = FastParserState(conf, lexer, state_stack, value_stack)
        if start_interactive:
            return InteractiveParser(self, parser_state, parser_state.lexer)
        return self.parse_from_state(parser_state)


class FastLALRParser(LALR_Parser):
    def __init__(self, parser_conf, debug: bool = False, strict: bool = False):
        super().__init__(parser_conf, debug, strict)
        self.parser = _FastParser(self._parse_table, parser_conf.callbacks, debug)

    @classmethod
    def deserialize(cls, data, memo, callbacks, debug=False):
        inst = cls.__new__(cls)
        inst._parse_table = IntParseTable.deserialize(data, memo)
        inst.parser = _FastParser(inst._parse_table, callbacks, debug)
        return inst
