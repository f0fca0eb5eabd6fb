"""The RRLSRN network, and its TorchScript artifact with the model card (docs/design.md "Model artifact").

May import: torch, numpy, the Lib's ``errors`` and ``resources``.
Must not import: ``engine``, ``training``, ``evaluation``, ``mrml``, ``cli``; the model knows
nothing of volumes, data or front ends.
"""
