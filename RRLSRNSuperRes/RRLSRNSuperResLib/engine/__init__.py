"""Volume -> x2 volume, slice by slice: plane choice, normalisation, batches, devices, windows, progress.

The one inference path every front end (CLI, Slicer, evaluation) uses.
May import: ``imaging``, ``model``, torch, numpy, the Lib's ``errors`` and ``resources`` (the bundled models).
Must not import: ``io`` (callers bring arrays), ``masks``, ``evaluation``, ``training``,
``mrml``, ``cli``, ``slicer``.
"""
