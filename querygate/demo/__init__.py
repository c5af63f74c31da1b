"""The demo: an embedded PostgreSQL, a sample fintech data set and a ready project."""

from querygate.demo._banner import banner
from querygate.demo._embedded import start_embedded, stop_embedded
from querygate.demo._run import DEMO_USERS, DemoSetup, demo_tokens, prepare, write_project
from querygate.demo._sample import CANARIES, load_sample

__all__ = [
    "CANARIES",
    "DEMO_USERS",
    "DemoSetup",
    "banner",
    "demo_tokens",
    "load_sample",
    "prepare",
    "start_embedded",
    "stop_embedded",
    "write_project",
]
