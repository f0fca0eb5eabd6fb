"""Training RRLSRN: the data pack, patch sampling, the Charbonnier + GDL loss, the loop, checkpoints, export.

May import: ``imaging``, ``model``, ``io``, torch, numpy.
Must not import: ``engine``, ``evaluation``, ``mrml``, ``cli``, ``slicer``.
"""
