"""What a convolution and a pooling layer compute, written with NumPy.

A convolution slides a small grid of weights, the kernel, over the image. At each
position it multiplies the kernel with the pixels underneath and sums the products:
that sum is one pixel of the output. Keras' ``Conv2D`` does exactly this (without
flipping the kernel, strictly a *cross-correlation*) and, with the default
``padding="valid"``, only at positions where the whole kernel fits inside the image.

Max pooling keeps the largest value of each non-overlapping ``size x size`` window,
so a 2x2 pooling halves the height and width while keeping the strongest responses.
"""

import numpy as np

# The classic edge-detection kernel: 8 in the middle and -1 on its eight neighbours.
# Its weights sum to 0, so flat areas of the image give 0 and only changes of brightness
# (edges) give a response.
# BEGIN SOLUTION hint: a 3x3 float32 NumPy array with 8 in the middle and -1 everywhere else
EDGE_KERNEL = np.array(
    [
        [-1, -1, -1],
        [-1, 8, -1],
        [-1, -1, -1],
    ],
    dtype=np.float32,
)
# END SOLUTION


def convolve2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid 2-D cross-correlation of ``image`` with ``kernel``, as ``Conv2D`` computes it.

    ``output[i, j] = sum(image[i:i + kh, j:j + kw] * kernel)`` for every position where
    the kernel fits, so the output has shape ``(H - kh + 1, W - kw + 1)``. The kernel is
    not flipped. Any kernel shape (also non-square) up to the image's size is allowed.

    Args:
        image: 2-D array (H, W).
        kernel: 2-D array (kh, kw) with kh <= H and kw <= W.

    Returns:
        A float array of shape (H - kh + 1, W - kw + 1).

    Raises:
        ValueError: if either array is not 2-D or the kernel is larger than the image.
    """
    # BEGIN SOLUTION hint: the output has shape (H - kh + 1, W - kw + 1); each output pixel is the sum
    # hint: of the kernel times the image window under it
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"expected 2-D image and kernel, got shapes {image.shape} and {kernel.shape}")
    kh, kw = kernel.shape
    out_h, out_w = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"kernel {kernel.shape} is larger than image {image.shape}")
    # Instead of visiting every output pixel, visit every kernel weight: weight (i, j)
    # multiplies the block of the image shifted by (i, j). Adding these blocks up gives
    # every window's sum of products at once.
    output = np.zeros((out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            output += kernel[i, j] * image[i : i + out_h, j : j + out_w]
    return output
    # END SOLUTION


def max_pool2d(image: np.ndarray, size: int = 2) -> np.ndarray:
    """Max pooling over non-overlapping ``size x size`` windows, as ``MaxPooling2D(size)``.

    Rows and columns left over at the bottom and right edge (when H or W is not a
    multiple of ``size``) are dropped, as with ``padding="valid"``.

    Args:
        image: 2-D array (H, W) with H and W at least ``size``.
        size: the side of each window (also the stride).

    Returns:
        An array of shape (H // size, W // size) with the same dtype as ``image``.
    """
    # BEGIN SOLUTION hint: crop to multiples of size, then take the maximum of each window
    # hint: (a reshape to (H // size, size, W // size, size) helps)
    image = np.asarray(image)
    rows, cols = image.shape[0] // size, image.shape[1] // size
    cropped = image[: rows * size, : cols * size]
    return cropped.reshape(rows, size, cols, size).max(axis=(1, 3))
    # END SOLUTION
