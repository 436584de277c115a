"""Data preprocessors: views made on the device from JPEG bytes (DevicePairPreprocessor)."""
from .device_pair import DevicePairPreprocessor

__all__ = ['DevicePairPreprocessor']
