"""Mask R-CNN on COCO: detection ops in plain PyTorch (no torchvision) and the COCO data."""
