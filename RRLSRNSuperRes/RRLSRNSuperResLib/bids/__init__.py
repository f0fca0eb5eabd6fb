"""The BIDS App: find the stacks of a BIDS dataset, write x2 derivatives with provenance, resumably.

May import: ``pipeline``, ``model`` (the model's identity), ``io``, ``errors``, ``resources``,
pybids (an optional extra, imported when the app runs), the standard library.
Must not import: ``engine`` directly (``pipeline`` runs it), ``mrml``, ``cli``, ``slicer``.
"""
