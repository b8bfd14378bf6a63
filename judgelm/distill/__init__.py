"""``judgelm distill``: the JudgeLM paper's data pipeline (seed tasks, answers from several
models, answer pairs across models, teacher judgments in both orders with and without the
reference) into training records `judgelm.train` reads as they are. See `judgelm.distill.pipeline`.
"""

from judgelm.distill.models import EndpointModel, LocalModel, TextModel, model_from_spec
from judgelm.distill.pipeline import DistillConfig, distill
from judgelm.distill.teacher import TeacherPrompt, read_judgment

__all__ = [
    "DistillConfig",
    "EndpointModel",
    "LocalModel",
    "TeacherPrompt",
    "TextModel",
    "distill",
    "model_from_spec",
    "read_judgment",
]
