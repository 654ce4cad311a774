"""Tokenizer and parser of the expression language (the tree it builds: ``engine.expr.nodes``).

Grammar (lowest precedence first)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum | ["not"] "in" (list | named))?
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/" | "%") unary)*
    unary    := "-" unary | primary
    primary  := NUMBER | STRING | "true" | "false" | "null" | list | NAME | NAME "(" args ")" | "(" expr ")"
    list     := "[" [literal ("," literal)*] [","] "]"
    named    := "list" "(" STRING ")"

``x in list('name')`` tests membership of a custom list (engine.custom_lists, docs/lists.md): it
parses to ``Call(IN_LIST, (x, Literal('name')))`` (``not in``: that call under ``Not``), so every
consumer treats it as a function call that is missing when ``x`` is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from engine.expr.nodes import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not
from engine.expr.numbers import is_number, parse_literal

__all__ = ["MAX_DEPTH", "MAX_EXPRESSION_LENGTH", "ExprSyntaxError", "parse"]

MAX_EXPRESSION_LENGTH = 4000
MAX_DEPTH = 64


class ExprSyntaxError(ValueError):
    """The text is not a valid expression; `column` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (at column {column})")
        self.message = message
        self.column = column


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|%|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # number string name kw op end
    text: str
    pos: int  # 1-based column


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            hint = " (use 'and', 'or', 'not')" if ch in "&|!" else ""
            if ch == "=":
                hint = " (use '==' to compare)"
            raise ExprSyntaxError(f"unexpected character {ch!r}{hint}", i + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word in _KEYWORDS:
                kind = "kw"
            elif kind == "name" and word.lower() in _KEYWORDS | {"true", "false"} and word != word.lower():
                raise ExprSyntaxError(f"keywords are lower case: write {word.lower()!r}", i + 1)
            toks.append(_Tok(kind, word, i + 1))
        i = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


def _unquote(raw: str, pos: int) -> str:
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ExprSyntaxError(f"unknown escape \\{nxt} in string", pos + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> _Tok | None:
        tok = self.peek()
        if tok.kind in ("op", "kw") and tok.text == text:
            self.i += 1
            return tok
        return None

    def expect(self, text: str, what: str) -> _Tok:
        tok = self.accept(text)
        if tok is None:
            got = self.peek()
            raise ExprSyntaxError(f"expected {what}, found {_describe(got)}", got.pos)
        return tok

    def parse(self) -> Node:
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExprSyntaxError(f"unexpected {_describe(tok)} after a complete expression", tok.pos)
        return node

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprSyntaxError("expression is nested too deeply", self.peek().pos)

    def or_(self) -> Node:
        first = self.peek()
        items = [self.and_()]
        while self.accept("or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items), first.pos)

    def and_(self) -> Node:
        first = self.peek()
        items = [self.not_()]
        while self.accept("and"):
            items.append(self.not_())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items), first.pos)

    def not_(self) -> Node:
        tok = self.accept("not")
        if tok is not None:
            self._enter()
            node = Not(self.not_(), tok.pos)
            self.depth -= 1
            return node
        return self.compare()

    def compare(self) -> Node:
        left = self.sum_()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            right = self.sum_()
            node: Node = Compare(tok.text, left, right, tok.pos)
        elif tok.kind == "kw" and tok.text == "in":
            self.take()
            node = self.named(left, tok.pos) or InList(left, self.list_(), False, tok.pos)
        elif tok.kind == "kw" and tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.take()
            self.take()
            named = self.named(left, tok.pos)
            node = Not(named, tok.pos) if named is not None else InList(left, self.list_(), True, tok.pos)
        else:
            return left
        nxt = self.peek()
        if nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
            raise ExprSyntaxError("comparisons cannot be chained; join them with 'and'", nxt.pos)
        return node

    def named(self, operand: Node, pos: int) -> Call | None:
        """``list('name')`` after ``in``: a custom-list membership test, or None when a literal list follows."""
        tok = self.peek()
        if not (tok.kind == "name" and tok.text == "list" and self.toks[self.i + 1].text == "("):
            return None
        self.take()
        self.take()
        name = self.take()
        if name.kind != "string":
            raise ExprSyntaxError("list() takes the list's name in quotes, e.g. list('blocked_devices')", name.pos)
        self.expect(")", "')' after the list's name")
        return Call(IN_LIST, (operand, Literal(_unquote(name.text, name.pos), name.pos)), pos)

    def sum_(self) -> Node:
        node = self.product()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text in ("+", "-"):
                self.take()
                node = BinOp(tok.text, node, self.product(), tok.pos)
            else:
                return node

    def product(self) -> Node:
        node = self.unary()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text in ("*", "/", "%"):
                self.take()
                node = BinOp(tok.text, node, self.unary(), tok.pos)
            else:
                return node

    def unary(self) -> Node:
        tok = self.accept("-")
        if tok is not None:
            self._enter()
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Literal) and is_number(operand.value):
                v = operand.value
                return Literal(v.copy_negate() if isinstance(v, Decimal) else -v, tok.pos)  # type: ignore[operator]
            return Neg(operand, tok.pos)
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            return Literal(parse_literal(tok.text), tok.pos)
        if tok.kind == "string":
            return Literal(_unquote(tok.text, tok.pos), tok.pos)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Literal(tok.text == "true", tok.pos)
        if tok.kind == "kw" and tok.text == "null":
            return Literal(None, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self._enter()
            node = self.or_()
            self.depth -= 1
            self.expect(")", "')'")
            return node
        if tok.kind == "op" and tok.text == "[":
            raise ExprSyntaxError("a list may only follow 'in' or 'not in'", tok.pos)
        if tok.kind == "name":
            return self.name_or_call(tok)
        if tok.kind == "name" or (tok.kind == "kw" and tok.text == "if"):
            return Name(tok.text, tok.pos)
        raise ExprSyntaxError(f"expected a value, found {_describe(tok)}", tok.pos)

    def name_or_call(self, tok: _Tok) -> Node:
        """A name, or a call of a named function when '(' follows it."""
        if tok.text in ("list", IN_LIST) and self.peek().text == "(":
            raise ExprSyntaxError("list('name') may only follow 'in' or 'not in'", tok.pos)
        if not self.accept("("):
            return Name(tok.text, tok.pos)
        args: list[Node] = []
        if not self.accept(")"):
            self._enter()
            args.append(self.or_())
            while self.accept(","):
                args.append(self.or_())
            self.depth -= 1
            self.expect(")", "')' or ','")
        return Call(tok.text, tuple(args), tok.pos)

    def list_(self) -> tuple[Literal, ...]:
        self.expect("[", "'[' to start a list")
        items: list[Literal] = []
        while not self.accept("]"):
            item = self.unary()
            if not isinstance(item, Literal) or item.value is None:
                raise ExprSyntaxError("list items must be numbers, strings or booleans", item.pos)
            items.append(item)
            if not self.accept(","):
                self.expect("]", "',' or ']'")
                break
        if not items:
            raise ExprSyntaxError("a list needs at least one item", self.toks[self.i - 1].pos)
        return tuple(items)


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end of the expression"
    return repr(tok.text)


def parse(text: str) -> Node:
    """Parse expression text into an AST; raises ExprSyntaxError with the column."""
    if not isinstance(text, str):
        raise ExprSyntaxError("an expression must be text", 1)
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExprSyntaxError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 1)
    if not text.strip():
        raise ExprSyntaxError("empty expression", 1)
    return _Parser(text).parse()
