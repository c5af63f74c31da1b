"""Reports for compliance: subject access (GDPR Art. 15), offboarding, access review, SOC 2.

Each builder reads the audit log (and the identity directory), verifies the log, and returns a
``Report``; ``render`` turns it into HTML (print-ready), CSV or JSON.
"""

from querygate.reports._build import KINDS, build
from querygate.reports._model import Integrity, Report, Section
from querygate.reports._render import FORMATS, render
from querygate.reports._review import access_review, soc2_pack
from querygate.reports._subject import offboarding, subject_access

__all__ = [
    "FORMATS",
    "KINDS",
    "Integrity",
    "Report",
    "Section",
    "access_review",
    "build",
    "offboarding",
    "render",
    "soc2_pack",
    "subject_access",
]
