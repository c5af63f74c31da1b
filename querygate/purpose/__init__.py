"""Purpose: reasons where a role needs one, and SQL purpose checks on every subject released."""

from querygate.purpose._config import MODES, Check, Requirement, load_requirements
from querygate.purpose._guard import PurposeGuard, bindings, prepare_check

__all__ = ["MODES", "Check", "PurposeGuard", "Requirement", "bindings", "load_requirements", "prepare_check"]
