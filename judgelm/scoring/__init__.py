"""Logit-based verdict scoring: read a judge's verdict from its next-token distribution."""
