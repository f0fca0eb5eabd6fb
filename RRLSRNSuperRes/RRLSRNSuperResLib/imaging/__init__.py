"""Pure numerics on arrays and tensors: the x2 grid, the HR -> LR degradations, spline baselines, intensity ranges.

May import: numpy, scipy, torch (tensor maths only, no models) and the Lib's ``errors``.
Must not import: any other subpackage, ``slicer``, files or devices; everything here is a
function of its arguments, so the rest of the Lib can build on it.
"""
