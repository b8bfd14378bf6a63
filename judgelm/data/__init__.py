"""Judge training data: records with teacher judgments (`records`) and a synthetic, verifiable
generator (`synthetic`)."""

from judgelm.data.records import JudgeRecord, read_records, record_from_dict

__all__ = ["JudgeRecord", "read_records", "record_from_dict"]
