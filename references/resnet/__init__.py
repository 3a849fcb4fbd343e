"""Image classification: ResNet-50 v1.5 on ImageNet (MLPerf training v0.5)."""
