"""Multi-stack fetal 3D reconstruction: stack alignment, slice-to-volume registration, super-resolution fusion.

May import: ``imaging``, ``masks``, torch, numpy, scipy, SimpleITK, the Lib's ``errors``.
Must not import: ``engine``, ``model``, ``io``, ``evaluation``, ``training``, ``pipeline``, ``bids``, ``mrml``,
``cli``, ``slicer``.
"""
