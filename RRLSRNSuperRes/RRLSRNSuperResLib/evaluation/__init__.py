"""Measured quality: PSNR, SSIM and Dice with their conventions, the simulated-LR comparison of methods, and
the 3D reconstruction scored against simulated truth and on real stacks left out.

May import: ``imaging``, ``engine`` (the model is scored through the path users run),
``model``, ``masks`` (masks onto the x2 grid), ``reconstruction`` (simulated stacks with known
poses, the reconstruction it scores), numpy, scipy, the Lib's ``errors`` and ``resources``.
Must not import: ``io`` (callers bring arrays), ``training``, ``mrml``, ``cli``, ``slicer``.
"""
