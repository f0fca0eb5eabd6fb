"""Measured quality: PSNR, SSIM and Dice with their conventions, and the simulated-LR comparison of methods.

May import: ``imaging``, ``engine`` (the model is scored through the path users run),
``model``, numpy, scipy, the Lib's ``errors`` and ``resources``.
Must not import: ``io`` (callers bring arrays), ``training``, ``mrml``, ``cli``, ``slicer``.
"""
