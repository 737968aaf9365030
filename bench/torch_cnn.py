#!/usr/bin/python3
"""The Fashion-MNIST CNN of the paper (section 5.1) in PyTorch, for kronvi's CNN speed table:
1-10-mp-20-mp-40-mp-80-mp-flatten-10 (3x3 convolutions, stride 1, same padding, ELU, 2x2
max-pooling), ARD prior, Adam lr 1e-3, batch 100, single precision, families point / diag / mn
(mn-diag too), with kronvi's parameterization, initialization and local reparameterization per
output position (docs/nn-conv.md). Every LRT product is a convolution of the image
(bench/torch_models.py): mean conv(x, M), DIAG variance conv(x o x, sigma^2), MN ||conv(x, A)||
over the n = 9 c_in channels times a 1 x 1 convolution of the noise with B; ELU after the
max-pooling.

This is bench/torch_mlp.py with the CNN's defaults (30 timed steps after 5 warm-up steps,
families point,diag,mn); it takes the same options (--help).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mlp  # noqa: E402

if __name__ == "__main__":
    torch_mlp.main("cnn")
