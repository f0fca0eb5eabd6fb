"""Motion-corrected multi-stack 3D reconstruction: slice acquisition model, SVR and SRR.

Stacks arrive already super-resolved in-plane (the caller runs RRLSRN first), so this room is
pure numerics and registration in LPS patient space (mm), arrays in numpy [k, j, i] order.

May import: ``imaging``, ``masks``, torch, numpy, scipy, SimpleITK, the Lib's ``errors``.
Must not import: ``engine``, ``model``, ``io``, ``evaluation``, ``training``, ``pipeline``, ``bids``,
``mrml``, ``cli``, ``slicer``.
"""
