"""Limits: calls per window and different subjects per day and per 30 days, kept in PostgreSQL."""

from querygate.limits._config import KINDS, Limit, LimitsConfig, load_limits
from querygate.limits._guard import LimitsGuard, build_limits_guard

__all__ = ["KINDS", "Limit", "LimitsConfig", "LimitsGuard", "build_limits_guard", "load_limits"]
