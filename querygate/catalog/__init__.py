"""The catalog: named, typed query functions loaded from ``queries/*.sql``."""

from querygate.catalog._catalog import Catalog, Function, load_catalog
from querygate.catalog._params import INT4, INT8, MAX_ARRAY_ITEMS, TYPE_NAMES, Parameter, bind
from querygate.catalog._queryfile import QueryBlock, parse_query_file
from querygate.catalog._sql import placeholders, to_psycopg

__all__ = [
    "INT4",
    "INT8",
    "MAX_ARRAY_ITEMS",
    "TYPE_NAMES",
    "Catalog",
    "Function",
    "Parameter",
    "QueryBlock",
    "bind",
    "load_catalog",
    "parse_query_file",
    "placeholders",
    "to_psycopg",
]
