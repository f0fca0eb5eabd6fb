"""Files: reading and writing volumes with their geometry (SimpleITK, LPS), atomic replacement.

May import: ``imaging`` (for the grid), numpy, SimpleITK, the Lib's ``errors``.
Must not import: torch, ``engine``, ``model``, ``masks``, ``evaluation``, ``training``,
``mrml``, ``cli``, ``slicer``.
"""
