"""What a statement is: a function call, a session statement, or something else.

A small tokenizer (quotes, dollar quotes, comments) splits a simple query into statements and
reads the two shapes a function call takes, ``SELECT * FROM fn(args)`` and ``SELECT fn(args)``,
with positional or named (``name => value``) arguments: literals or ``$n`` parameters. Anything
it does not recognise falls through to the session's next check, never to the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*)
  | (?P<string>[eE]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
  | (?P<param>\$[0-9]+)
  | (?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+)
  | (?P<ident>[A-Za-z_][A-Za-z_0-9$]*)
  | (?P<op>=>|::|<>|!=|>=|<=|!~|[-+*/<>=~!@#%^&|`?.,;:()\[\]{}])
""", re.VERBOSE)
MAX_STATEMENTS = 100


class SqlSyntaxError(ValueError):
    """The text cannot be tokenized (an unterminated quote or comment)."""


@dataclass(frozen=True)
class Token:
    kind: str  # ident, qident, string, number, param, op
    text: str
    start: int
    end: int

    @property
    def word(self) -> str:
        """Identifiers case-folded as PostgreSQL folds them; quoted ones as written."""
        if self.kind == "qident":
            return self.text[1:-1].replace('""', '"')
        return self.text.lower()

    def is_(self, *words: str) -> bool:
        return self.kind in ("ident", "op") and self.text.lower() in words


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text.startswith("/*", pos):
            pos = _block_comment_end(text, pos)
            continue
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SqlSyntaxError(f"unexpected character at position {pos + 1}")
        kind = match.lastgroup or "op"
        if kind == "tag":
            kind = "dollar"
        end = match.end()
        if kind == "dollar":
            close = text.find(match.group(0), end)
            if close < 0:
                raise SqlSyntaxError("unterminated dollar-quoted string")
            tokens.append(Token("string", text[end:close], pos, close + len(match.group(0))))
            pos = close + len(match.group(0))
            continue
        if kind != "space":
            tokens.append(Token(kind, match.group(0), pos, end))
        pos = end
    return tokens


def _block_comment_end(text: str, pos: int) -> int:
    depth, i = 0, pos
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlSyntaxError("unterminated /* comment")


def split(text: str) -> list[tuple[str, list[Token]]]:
    """The statements of a simple query: (text, tokens) each, empty ones kept as ''."""
    tokens = tokenize(text)
    out: list[tuple[str, list[Token]]] = []
    current: list[Token] = []
    for token in [*tokens, Token("op", ";", len(text), len(text))]:
        if token.kind == "op" and token.text == ";":
            if current:
                out.append((text[current[0].start:current[-1].end], current))
            current = []
            if len(out) > MAX_STATEMENTS:
                raise SqlSyntaxError(f"more than {MAX_STATEMENTS} statements in one query")
        else:
            current.append(token)
    if not out:
        out.append(("", []))
    return out


def string_value(token: Token) -> str:
    """A string literal's value: '' doubled quotes, E'' backslash escapes."""
    if token.text[:1] in "eE" and token.text[1:2] == "'":
        body = token.text[2:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]),
                      body.replace("''", "'"))
    if token.text.startswith("'"):
        return token.text[1:-1].replace("''", "'")
    return token.text  # dollar-quoted: the body as written


# ---- function calls ------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """``$n`` (1-based), bound by the extended protocol."""

    index: int


Value = str | bool | None | Param | list["Value"]


@dataclass(frozen=True)
class Call:
    """A call of a named function: positional and named arguments, as written."""

    function: str
    positional: tuple[Value, ...]
    named: tuple[tuple[str, Value], ...]
    columns: tuple[str, ...] | None = None  # ``SELECT a, b FROM fn(…)``: these, in this order

    @property
    def max_param(self) -> int:
        values = [*self.positional, *(v for _, v in self.named)]
        return max((_max_param(v) for v in values), default=0)


def _max_param(value: Value) -> int:
    if isinstance(value, Param):
        return value.index
    if isinstance(value, list):
        return max((_max_param(v) for v in value), default=0)
    return 0


class _Stream:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end")
        self.i += 1
        return token

    def accept(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.is_(*words):
            self.i += 1
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise ValueError(f"expected {words[0]}")

    @property
    def done(self) -> bool:
        return self.i >= len(self.tokens)


def parse_call(tokens: list[Token]) -> Call | None:
    """``SELECT * FROM [schema.]fn(args) [[AS] alias]``, ``SELECT a, b FROM fn(args) …`` (plain
    column names of its result) or ``SELECT [schema.]fn(args)``."""
    s = _Stream(tokens)
    try:
        s.expect("select")
        columns = _projection(s)
        star = columns is not None or s.accept("*")
        if star:
            s.expect("from")
        name = _function_name(s)
        s.expect("(")
        positional, named = _arguments(s)
        alias = s.peek()
        if star and alias is not None and (alias.is_("as") or alias.kind in ("ident", "qident")):
            s.accept("as")
            _identifier(s)
        if not s.done:
            return None
    except ValueError:
        return None
    return Call(name, tuple(positional), tuple(named), columns)


def _projection(s: _Stream) -> tuple[str, ...] | None:
    """Column names up to FROM (``a, b``), or None (and nothing read) when it is not that."""
    start, names = s.i, []
    try:
        while True:
            names.append(_identifier(s))
            if s.accept(","):
                continue
            token = s.peek()
            if token is not None and token.is_("from"):
                return tuple(names)
            break
    except ValueError:
        pass
    s.i = start
    return None


def _identifier(s: _Stream) -> str:
    token = s.next()
    if token.kind not in ("ident", "qident"):
        raise ValueError("expected a name")
    return token.word


def _function_name(s: _Stream) -> str:
    name = _identifier(s)
    if s.accept("."):
        if name not in ("public", "querygate"):
            raise ValueError("not a querygate function")
        name = _identifier(s)
    return name


def _arguments(s: _Stream) -> tuple[list[Value], list[tuple[str, Value]]]:
    positional: list[Value] = []
    named: list[tuple[str, Value]] = []
    if s.accept(")"):
        return positional, named
    while True:
        first, second = s.peek(), s.peek(1)
        if first is not None and first.kind in ("ident", "qident") and second is not None \
                and second.is_("=>"):
            s.i += 2
            named.append((first.word, _value(s)))
        elif named:
            raise ValueError("a positional argument after a named one")
        else:
            positional.append(_value(s))
        if s.accept(")"):
            return positional, named
        s.expect(",")


def _value(s: _Stream) -> Value:
    value = _bare_value(s)
    while s.accept("::"):  # casts are ignored: the declared parameter type decides
        _identifier(s)
        while s.peek() is not None and s.peek().kind == "ident" and not s.peek(  # type: ignore[union-attr]
        ).is_("as"):
            _identifier(s)  # double precision, timestamp with time zone
        if s.accept("["):
            s.expect("]")
    return value


def _bare_value(s: _Stream) -> Value:
    token = s.next()
    if token.kind == "param":
        return Param(int(token.text[1:]))
    if token.kind == "string":
        return string_value(token)
    if token.kind == "number":
        return token.text
    if token.is_("-", "+"):
        number = s.next()
        if number.kind != "number":
            raise ValueError("expected a number")
        return ("-" if token.text == "-" else "") + number.text
    if token.is_("null"):
        return None
    if token.is_("true", "false"):
        return token.text.lower() == "true"
    if token.is_("array"):
        s.expect("[")
        items: list[Value] = []
        if not s.accept("]"):
            while True:
                items.append(_value(s))
                if s.accept("]"):
                    break
                s.expect(",")
        return items
    if token.is_("("):
        inner = _value(s)
        s.expect(")")
        return inner
    raise ValueError("not a literal")


# ---- session statements -------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """A statement answered without the database: BEGIN, SET, SHOW, DISCARD, ..."""

    kind: str  # begin, commit, rollback, savepoint, release, set, reset, show, discard, deallocate
    tag: str
    name: str | None = None
    value: str | None = None


_TRANSACTION = {"begin": "BEGIN", "start": "BEGIN", "commit": "COMMIT", "end": "COMMIT",
                "rollback": "ROLLBACK", "abort": "ROLLBACK", "savepoint": "SAVEPOINT",
                "release": "RELEASE"}


def parse_session(tokens: list[Token]) -> Session | None:
    if not tokens:
        return None
    head = tokens[0].text.lower() if tokens[0].kind == "ident" else ""
    if head in _TRANSACTION:
        if head == "start" and not (len(tokens) > 1 and tokens[1].is_("transaction")):
            return None
        kind = _TRANSACTION[head].lower()
        if head == "rollback" and any(t.is_("to") for t in tokens[1:3]):
            kind = "rollback_to"
        return Session(kind, _TRANSACTION[head])
    if head == "set":
        return _set(tokens[1:])
    if head == "reset":
        name = ".".join(t.word for t in tokens[1:] if t.kind != "op")
        return Session("reset", "RESET", name or "all")
    if head == "show":
        name = ".".join(t.word for t in tokens[1:] if t.kind != "op")
        if len(tokens) >= 3 and tokens[1].is_("time") and tokens[2].is_("zone"):
            name = "timezone"
        return Session("show", "SHOW", name) if name else None
    if head == "discard" and len(tokens) == 2:
        return Session("discard", f"DISCARD {tokens[1].text.upper()}")
    if head == "deallocate":
        rest = [t for t in tokens[1:] if not t.is_("prepare")]
        if len(rest) == 1:
            everything = rest[0].is_("all")
            return Session("deallocate", "DEALLOCATE ALL" if everything else "DEALLOCATE",
                           None if everything else rest[0].word)
    return None


def _set(tokens: list[Token]) -> Session | None:
    rest = list(tokens)
    if rest and rest[0].is_("session") and len(rest) > 1 and rest[1].is_("characteristics"):
        return Session("set", "SET")
    if rest and rest[0].is_("transaction"):
        return Session("set", "SET")
    if rest and rest[0].is_("session", "local"):
        rest = rest[1:]
    if len(rest) >= 3 and rest[0].is_("time") and rest[1].is_("zone"):
        return Session("set", "SET", "timezone", _setting_value(rest[2:]))
    eq = next((i for i, t in enumerate(rest) if t.is_("=", "to")), None)
    if not eq:
        return None
    name = "".join(t.text if t.kind == "op" else t.word for t in rest[:eq])
    if not re.fullmatch(r"[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)?", name):
        return None
    return Session("set", "SET", name, _setting_value(rest[eq + 1:]))


def _setting_value(tokens: list[Token]) -> str | None:
    if len(tokens) == 1 and tokens[0].is_("default", "local"):
        return None
    parts = []
    for t in tokens:
        if t.kind == "op" and t.text == ",":
            parts.append(", ")
        elif t.kind == "string":
            parts.append(string_value(t))
        elif t.kind == "qident":
            parts.append(t.word)
        else:
            parts.append(t.text)
    return "".join(parts)
