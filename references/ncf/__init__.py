"""NCF (NeuMF, He et al. 2017) as in the MLPerf training v0.5 recommendation reference."""
