"""The ``rrlsrn`` command: one module per subcommand, the argument parser and the terminal progress bar.

May import: every other subpackage (commands are lazy, so ``--help`` stays light).
Must not be imported by any other part of the Lib, nor by the Slicer module.
"""
