"""Sentiment analysis: seq-CNN on IMDB (MLPerf 2018 draft rules)."""
