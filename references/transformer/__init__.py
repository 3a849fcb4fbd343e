"""Translation: the Transformer on WMT English-German, uncased BLEU 25 on newstest2014 (MLPerf
training v0.5)."""
