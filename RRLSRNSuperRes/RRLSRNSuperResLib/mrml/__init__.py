"""Slicer-facing adapters: volume nodes to x2 volume nodes, brain segmentations, masks on node grids.

The only subpackage that imports ``slicer`` (the MRML classes and ``slicer.util`` array
helpers that slicer-core also has), and never Qt, ``slicer.app`` or ``slicer.modules``.
May import: ``engine`` (lazily, so no torch is needed before the first run), ``masks``,
``imaging``, ``pipeline`` (lazily: the in-process 3D reconstruction runs the very file-to-file job of
``rrlsrn reconstruct`` on the exported stacks), ``slicer``, ``vtk``, numpy, the Lib's ``errors``.
Must not import: ``io``, ``training``, ``evaluation``, ``cli``.
"""
