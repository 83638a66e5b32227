"""viz: run folders read back (`load`), figures (`figures`), the HTML report, TensorBoard export.

Public to code outside the package (the experiments): `new_figure` and `save_figure`.
"""

from .figures import new_figure, save_figure

__all__ = ["new_figure", "save_figure"]
