"""Bias audits on labelled pairs: position, knowledge, format, length, self-consistency and the
scoring head's calibration. Each audit is a pure function of items and verdicts; `run_audits`
makes the judge calls and `write_audit` the report (Markdown + JSON + PNG)."""

from judgelm.eval.audits.consistency import ConsistencyAudit, consistency_audit
from judgelm.eval.audits.length import LengthAudit, answer_lengths, length_audit
from judgelm.eval.audits.position import PositionAudit, position_audit
from judgelm.eval.audits.reference import FormatAudit, KnowledgeAudit, format_audit, knowledge_audit
from judgelm.eval.audits.reliability import Reliability, preference_probs, reliability_audit
from judgelm.eval.audits.report import render_markdown, write_audit
from judgelm.eval.audits.runner import AUDITS, AuditReport, run_audits

__all__ = [
    "AUDITS",
    "AuditReport",
    "ConsistencyAudit",
    "FormatAudit",
    "KnowledgeAudit",
    "LengthAudit",
    "PositionAudit",
    "Reliability",
    "answer_lengths",
    "consistency_audit",
    "format_audit",
    "knowledge_audit",
    "length_audit",
    "position_audit",
    "preference_probs",
    "reliability_audit",
    "render_markdown",
    "run_audits",
    "write_audit",
]
