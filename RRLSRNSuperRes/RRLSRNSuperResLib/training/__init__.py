"""Training RRLSRN: the data pack, patch sampling, the loop, checkpoints, export.

The Charbonnier + GDL loss is the model's (``model.losses``), shared with the adaptation.

May import: ``imaging``, ``model``, ``io``, torch, numpy.
Must not import: ``engine``, ``evaluation``, ``mrml``, ``cli``, ``slicer``.
"""
