"""Automation: Python triggers (and, as they land, flows) that run inside the one write path.

Project code imports :func:`trigger` from here; see :mod:`interlink.automation.triggers`.
"""

from interlink.automation.triggers import TriggerContext, TriggerRecord, action, trigger

__all__ = ["TriggerContext", "TriggerRecord", "action", "trigger"]
