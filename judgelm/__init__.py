"""judgelm: fine-tuned LLMs as fast, trustworthy judges.

>>> from judgelm import Judge, Sample
>>> judge = Judge.from_pretrained("BAAI/JudgeLM-7B-v1.0")              # doctest: +SKIP
>>> judge.judge([Sample("What is 2+2?", ("4", "5"))])[0].winner          # doctest: +SKIP
0
"""

import judgelm.cpu_threads  # noqa: F401  (first: sets OpenMP's wait policy before torch loads)
from judgelm.errors import (
    FormatError,
    InvalidSampleError,
    JudgeLMError,
    MissingDependencyError,
    ModelLoadError,
    PromptTooLongError,
    ScoringError,
)
from judgelm.formats import (
    Formatter,
    Prompt,
    VerdictSpec,
    get_format,
    list_formats,
    parse_scores,
    register_format,
)
from judgelm.io import read_samples, write_results
from judgelm.judge import Discussion, Judge
from judgelm.types import (
    Preference,
    Provenance,
    Sample,
    ScoreDistribution,
    Truncation,
    Turn,
    Verdict,
)
from judgelm.version import __version__

__all__ = [
    "Discussion",
    "FormatError",
    "Formatter",
    "InvalidSampleError",
    "Judge",
    "JudgeLMError",
    "MissingDependencyError",
    "ModelLoadError",
    "Preference",
    "Prompt",
    "PromptTooLongError",
    "Provenance",
    "Sample",
    "ScoreDistribution",
    "ScoringError",
    "Truncation",
    "Turn",
    "Verdict",
    "VerdictSpec",
    "__version__",
    "get_format",
    "list_formats",
    "parse_scores",
    "read_samples",
    "register_format",
    "write_results",
]
