"""convgrader: the autograder for the 'Improving Computer Vision Accuracy using Convolutions' lab."""

__version__ = "0.1.0"
