"""Shared by every reference: errors, typed config overrides, targets, MLPerf logging, results."""
