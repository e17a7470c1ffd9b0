"""EfficientSAM Studio: label images for segmentation with EfficientSAM."""

__version__ = "0.1.0"
