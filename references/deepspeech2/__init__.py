"""DeepSpeech2 on LibriSpeech (MLPerf training speech_recognition reference)."""
