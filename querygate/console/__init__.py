"""The web console: for the people who answer the regulator, offboard a leaver, or call a
function without a terminal.

Server-rendered pages (Jinja2, autoescaped) over the same ``Gateway`` as every other front
door: calls go through ``Gateway.call`` with ``client="console"``, audit reads and admin steps
through the paths the API and the command line use, each audited. Sessions are server-side
and re-checked against the directory on every request (``_sessions``); every form carries a
CSRF token; the Content-Security-Policy allows no inline script.
"""

from querygate.console._app import console_app, console_routes
from querygate.console._sessions import SessionStore

__all__ = ["SessionStore", "console_app", "console_routes"]
