"""Kept so that ``from judgelm.serve.options import JudgeOptions`` still works: the options are a
core type now (`judgelm.options`), used by `Judge.judge`, the CLI and the integrations too."""

from judgelm.options import JudgeOptions

__all__ = ["JudgeOptions"]
