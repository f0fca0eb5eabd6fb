"""Whole jobs from files to files: one stack read, super-resolved and written on the exact x2 grid, or
several stacks fused into one 3D volume (``reconstruction``).

What ``rrlsrn superres`` and the BIDS app both run, so they cannot drift apart.
May import: ``io``, ``engine``, ``masks``, ``reconstruction``, ``imaging``, numpy, the Lib's ``errors``.
Must not import: ``evaluation``, ``training``, ``bids``, ``mrml``, ``cli``, ``slicer``; it
prints nothing (callers report).
"""
