"""Rendering a report: HTML (with a print stylesheet), CSV (sections one after another), JSON."""

from __future__ import annotations

import csv
import io
from importlib import resources

import jinja2
import orjson

from querygate.reports._model import Report

FORMATS = ("html", "csv", "json")

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("querygate.reports", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def to_html(report: Report) -> str:
    """One self-contained page: the stylesheet is inlined so the file can be mailed or printed."""
    css = resources.files("querygate.reports").joinpath("templates/report.css").read_text("utf-8")
    return _ENV.get_template("report.html").render(report=report, css=css)


def to_csv(report: Report) -> str:
    """Every section as a titled table, one after another (spreadsheets open it as is)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([report.title])
    writer.writerow(["Integrity", report.integrity.statement])
    for label, value in report.summary:
        writer.writerow([label, value])
    for section in report.sections:
        writer.writerow([])
        writer.writerow([section.title])
        writer.writerow(section.columns)
        writer.writerows(section.rows)
    return out.getvalue()


def to_json(report: Report) -> bytes:
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)


def render(report: Report, fmt: str) -> bytes:
    """The report in ``fmt`` (html, csv or json), as bytes ready to write."""
    if fmt == "html":
        return to_html(report).encode()
    if fmt == "csv":
        return to_csv(report).encode()
    if fmt == "json":
        return to_json(report)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
