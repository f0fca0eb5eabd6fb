"""The fetal brain mask: automatic classical method, and transfer of masks to the x2 grid.

May import: ``imaging``, numpy, scipy, SimpleITK, the Lib's ``errors``.
Must not import: torch, ``engine``, ``model``, ``io``, ``mrml``, ``cli``, ``slicer``; it runs
in Slicer's Python without PyTorch.
"""
