"""Where each value of a query comes from: a walk over sqlglot scopes down to base columns.

Every column reference is resolved through the scope that defines it (table, view, CTE,
derived table, LATERAL, set operation, VALUES, table function); any other expression
combines the values of everything it contains. What cannot be resolved is untraced.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType

from querygate.errors import LineageError
from querygate.lineage._clauses import filter_expressions
from querygate.lineage._model import Relation
from querygate.lineage._parse import DIALECT, function_key, table_relation
from querygate.lineage._values import UNTRACED, Environment, Outputs, Value

_MAX_ROUNDS = 64  # a recursive CTE's sources grow monotonically; this is a safety net


Source = exp.Table | Scope


class Tracer:
    """Lineage of the scopes of one qualified query."""

    def __init__(self, root: Scope, env: Environment) -> None:
        self.root = root
        self.env = env
        self.scopes = list(root.traverse())
        self.problems: list[str] = []
        self._known = {id(s) for s in self.scopes}
        self._by_expression = {id(s.expression): s for s in self.scopes}
        self._memo: dict[int, Outputs] = {}
        self._estimates: dict[int, Outputs] = {}
        self._busy: set[int] = set()
        self._function_tables: set[str] = set()

    # -- outputs of a scope -------------------------------------------------------------

    def outputs(self, scope: Scope) -> Outputs:
        key = id(scope)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return self._estimates.get(key, Outputs((), UNTRACED))
        self._busy.add(key)
        try:
            result = self._fixpoint(scope) if _is_recursive(scope) else self._compute(scope)
        finally:
            self._busy.discard(key)
        self._memo[key] = result
        return result

    def _compute(self, scope: Scope) -> Outputs:
        node = scope.expression
        if isinstance(node, exp.Select):
            outputs = Outputs(tuple(self._projection(p, scope) for p in node.expressions))
        elif isinstance(node, exp.SetOperation):
            outputs = self._set_operation(scope)
        elif isinstance(node, exp.Values):
            outputs = self._values(node, scope)
        elif isinstance(node, exp.Lateral) and scope.subquery_scopes:
            outputs = self.outputs(scope.subquery_scopes[0])
        elif isinstance(node, exp.UDTF):
            outputs = Outputs((), self._function_call(node, scope))
        else:
            outputs = Outputs((), self._untraced(f"cannot trace {type(node).__name__}"))
        return outputs.renamed(scope.outer_columns)

    def _projection(self, projection: exp.Expr, scope: Scope) -> tuple[str, Value]:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            text = projection.sql(dialect=DIALECT)
            return "*", self._untraced(f"cannot expand {text} (columns unknown)")
        return projection.alias_or_name, self.value(projection, scope)

    def _set_operation(self, scope: Scope) -> Outputs:
        branches = [self.outputs(s).columns for s in scope.set_operation_scopes]
        if not branches:
            return Outputs((), self._untraced("set operation without branches"))
        width = max(len(b) for b in branches)
        if any(len(b) != width for b in branches):
            self.problems.append("set operation branches have different widths")
        columns = []
        for i in range(width):
            values = [b[i][1] if i < len(b) else UNTRACED for b in branches]
            name = branches[0][i][0] if i < len(branches[0]) else "?column?"
            columns.append((name, Value.union(values)))
        return Outputs(tuple(columns))

    def _values(self, node: exp.Values, scope: Scope) -> Outputs:
        rows = [r.expressions if isinstance(r, exp.Tuple) else [r] for r in node.expressions]
        width = max((len(row) for row in rows), default=0)
        columns = []
        for i in range(width):
            cells = [self.value(row[i], scope) if i < len(row) else UNTRACED for row in rows]
            columns.append((f"column{i + 1}", Value.combine(cells)))
        return Outputs(tuple(columns))

    def _fixpoint(self, scope: Scope) -> Outputs:
        """A recursive CTE: start from its first branch, feed the result back until stable."""
        anchor = scope
        while anchor.set_operation_scopes:
            anchor = anchor.set_operation_scopes[0]
        estimate = self._compute(anchor).renamed(scope.outer_columns)
        for _ in range(_MAX_ROUNDS):
            self._estimates[id(scope)] = estimate
            before = set(self._memo)
            fresh = self._compute(scope)
            for stale in set(self._memo) - before:
                del self._memo[stale]
            merged = _merge(estimate, fresh)
            if merged == estimate:
                break
            estimate = merged
        else:
            estimate = Outputs((), self._untraced("recursive CTE did not converge"))
        self._estimates.pop(id(scope), None)
        return estimate

    # -- values of expressions ----------------------------------------------------------

    def value(self, node: exp.Expr, scope: Scope) -> Value:
        """The sources of ``node`` evaluated in ``scope``."""
        while isinstance(node, exp.Alias | exp.Paren):
            node = node.this
        if type(node) is exp.Column:
            return self.column(node, scope)
        field = self._row_field(node, scope) if isinstance(node, exp.Dot) else None
        return field if field is not None else Value.combine(self._parts(node, scope))

    def _row_field(self, node: exp.Dot, scope: Scope) -> Value | None:
        """``(c).ssn``: one field of a whole-row reference is that column."""
        row = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
        if not isinstance(row, exp.TableColumn) or not isinstance(node.expression, exp.Identifier):
            return None
        found = _find_source(row.name, scope)
        return None if found is None else self._source_column(found[0], found[1], node.name)

    def _parts(self, node: exp.Expr, scope: Scope) -> Iterator[Value]:
        stack = [node]
        while stack:
            current = stack.pop()
            if type(current) is exp.Column:
                yield self.column(current, scope)
            elif isinstance(current, exp.TableColumn):
                yield self.whole_row(current.name, scope)
            elif isinstance(current, exp.Select | exp.SetOperation):
                yield self._subquery(current)
            elif isinstance(current, exp.Table) and isinstance(current.this, exp.Identifier):
                yield self._untraced(f"cannot trace {current.sql(dialect=DIALECT)}")
            elif isinstance(current, exp.Table):
                stack.extend(_function_arguments(current))
            else:
                yield from self._extras(current, scope)
                stack.extend(current.iter_expressions())

    def _extras(self, node: exp.Expr, scope: Scope) -> Iterator[Value]:
        """What a node adds besides its children: named windows, user function bodies."""
        if isinstance(node, exp.Window) and node.args.get("alias"):
            for window in scope.expression.args.get("windows") or []:
                yield self.value(window, scope)
        if isinstance(node, exp.Anonymous):
            yield from self._user_function(node)

    def _user_function(self, node: exp.Anonymous) -> Iterator[Value]:
        key = function_key(node, self.env.schema)
        if key is None:
            return
        summary = self.env.function(key)
        self._function_tables |= summary.tables
        self.problems.extend(summary.problems)
        yield summary.outputs.whole()

    def _subquery(self, query: exp.Expr) -> Value:
        scope = self._by_expression.get(id(query))
        if scope is None:
            return self._untraced(f"cannot trace subquery {query.sql(dialect=DIALECT)[:60]}")
        value = self.outputs(scope).whole()
        parent = query.parent
        while isinstance(parent, exp.Subquery):
            parent = parent.parent
        if isinstance(parent, exp.Exists):
            value = Value.combine([value, self.filters(scope)])
        return value

    def _function_call(self, node: exp.Expr, scope: Scope) -> Value:
        """A table function's columns derive from all of its arguments."""
        parts = _function_arguments(node) if isinstance(node, exp.Table) else [node]
        return Value.combine(self.value(part, scope) for part in parts)

    def filters(self, scope: Scope) -> Value:
        """The sources of the row-deciding clauses of one scope."""
        return Value.combine(self.value(e, scope) for e in filter_expressions(scope))

    def all_filters(self) -> Value:
        """The filters of every scope, and of every view the query reads."""
        values = [self.filters(scope) for scope in self.scopes]
        views = [r for r in self._relations() if r.is_view]
        return Value.combine(values + [self.env.view(view).filters for view in views])

    # -- column references --------------------------------------------------------------

    def column(self, column: exp.Column, scope: Scope) -> Value:
        """The value of a column reference (``t.c``, ``t.*``, or a bare name)."""
        if isinstance(column.this, exp.Star):
            if not column.table:
                return self._untraced("cannot trace an unqualified *")
            return self.whole_row(column.table, scope)
        if not column.table:
            return self._bare_name(column, scope)
        found = _find_source(column.table, scope)
        if found is None:
            raise LineageError(f"unknown column: {column.table}.{column.name}")
        return self._source_column(found[0], found[1], column.name)

    def _bare_name(self, column: exp.Column, scope: Scope) -> Value:
        """A whole-row reference (``row_to_json(c)``) or an output name in ORDER BY."""
        parts: list[Value] = []
        if _find_source(column.name, scope) is not None:
            parts.append(self.whole_row(column.name, scope))
        if _outside_projections(column, scope):
            named = self.outputs(scope).lookup(column.name)
            if named is not None:
                parts.append(named)
        if not parts:
            raise LineageError(f"unknown column: {column.name}")
        return parts[0] if len(parts) == 1 else Value.combine(parts)

    def _source_column(self, source: Source, owner: Scope, name: str) -> Value:
        if isinstance(source, Scope):
            target = self._target(source)
            found = self.outputs(target).lookup(name) if target is not None else None
            return found if found is not None else self._untraced(f"cannot trace column {name}")
        if not isinstance(source.this, exp.Identifier):
            return self._function_call(source, owner)
        relation = table_relation(source, self.env.schema)
        values = [self._relation_column(relation, n) for n in _own_names(source, relation, name)]
        known = [v for v in values if v is not None]
        if not known or len(known) != len(values):
            raise LineageError(f"unknown column: {relation.qualified}.{name}")
        return known[0] if len(known) == 1 else Value.combine(known)

    def _relation_column(self, relation: Relation, name: str) -> Value | None:
        if relation.is_view:
            return self.env.view(relation).outputs.lookup(name)
        if any(c.name == name for c in relation.columns):
            return Value(frozenset({f"{relation.qualified}.{name}"}), direct=True)
        return None

    def whole_row(self, name: str, scope: Scope) -> Value:
        """Every column of the relation ``name`` (``row_to_json(c)``, ``to_jsonb(c.*)``)."""
        found = _find_source(name, scope)
        if found is None:
            raise LineageError(f"unknown table alias: {name}")
        source, owner = found
        if isinstance(source, Scope):
            target = self._target(source)
            if target is None:
                return self._untraced(f"cannot trace {name}")
            return self.outputs(target).whole()
        if not isinstance(source.this, exp.Identifier):
            return self._function_call(source, owner)
        relation = table_relation(source, self.env.schema)
        if relation.is_view:
            return self.env.view(relation).outputs.whole()
        return Value(relation.column_sources())

    def _target(self, source: Scope) -> Scope | None:
        """The scope to read: ``source`` itself, or for a recursive self-reference its CTE."""
        if id(source) in self._known:
            return source
        node: exp.Expr | None = source.expression
        while node is not None and not isinstance(node, exp.CTE):
            node = node.parent
        if node is None:
            return None
        return self._by_expression.get(id(node.this.unnest()))

    # -- tables and problems ------------------------------------------------------------

    def read_tables(self) -> frozenset[str]:
        """Every base table the query reads, through views and user functions."""
        tables = set(self._function_tables)
        for relation in self._relations():
            if relation.is_view:
                summary = self.env.view(relation)
                tables |= summary.tables
                self.problems.extend(summary.problems)
            else:
                tables.add(relation.qualified)
        return frozenset(tables)

    def _relations(self) -> list[Relation]:
        """The tables and views named in the query (each once)."""
        found: dict[str, Relation] = {}
        for table in self._table_nodes():
            relation = table_relation(table, self.env.schema)
            found[relation.qualified] = relation
        return list(found.values())

    def _table_nodes(self) -> Iterator[exp.Table]:
        for scope in self.scopes:
            for source in scope.sources.values():
                if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                    yield source
        for table in self.root.expression.find_all(exp.Table):
            if table.db and isinstance(table.this, exp.Identifier):
                yield table

    def _untraced(self, problem: str) -> Value:
        self.problems.append(problem)
        return UNTRACED


def _find_source(name: str, scope: Scope) -> tuple[Source, Scope] | None:
    current: Scope | None = scope
    while current is not None:
        source = current.sources.get(name)
        if source is not None:
            return source, current
        current = current.parent
    return None


def _outside_projections(column: exp.Column, scope: Scope) -> bool:
    """True when ``column`` sits in a clause that may name output columns (ORDER BY, ...)."""
    node: exp.Expr = column
    while node.parent is not None and node.parent is not scope.expression:
        node = node.parent
    return node.parent is scope.expression and node.arg_key in ("order", "distinct", "group")


def _is_recursive(scope: Scope) -> bool:
    if scope.scope_type != ScopeType.CTE or not isinstance(scope.expression, exp.SetOperation):
        return False
    cte = scope.expression.parent
    while isinstance(cte, exp.Subquery):
        cte = cte.parent
    with_ = cte.parent if isinstance(cte, exp.CTE) else None
    return isinstance(with_, exp.With) and bool(with_.args.get("recursive"))


def _merge(old: Outputs, new: Outputs) -> Outputs:
    columns = []
    for i, (name, value) in enumerate(old.columns):
        fresh = new.columns[i][1] if i < len(new.columns) else UNTRACED
        columns.append((name, Value.union([value, fresh])))
    return Outputs(tuple(columns), old.rest)


def _function_arguments(table: exp.Table) -> list[exp.Expr]:
    """What a table function (``generate_series(...)``, ``ROWS FROM (...)``) is computed from."""
    skip = (exp.TableAlias, exp.Join, exp.Pivot)
    return [e for e in table.iter_expressions() if not isinstance(e, skip)]


def _own_names(table: exp.Table, relation: Relation, name: str) -> list[str]:
    """The relation's own column(s) ``name`` refers to under ``FROM t AS a(x, y)``.

    An alias list renames the first columns by position; a later column may keep a name
    an alias reuses, so a name can mean more than one column (counted as both).
    """
    alias = table.args.get("alias")
    renamed = [c.name for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    own = [c.name for c in relation.columns]
    names = [own[i] for i, alias_name in enumerate(renamed) if alias_name == name and i < len(own)]
    names += [n for n in own[len(renamed) :] if n == name]
    return names
