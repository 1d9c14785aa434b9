# %% [markdown]
# # geosr from a notebook: xarray DataArrays in, a georeferenced DataArray out
#
# `geosr.super_resolve_xr` takes rioxarray DataArrays (CRS + transform, 2-D or
# `(band, y, x)`), aligns the guide onto the output grid exactly as `geosr dem-sr` does,
# runs the same tiles, statistics and blending, and returns a DataArray with the output
# grid's coordinates, CRS, transform, nodata and provenance attributes.
#
# Run it as a script (`python examples/xarray_notebook.py`: about 30 s on a shared 2-core
# CPU, most of it the 30 MMSR steps) or cell by cell in VS Code / Jupyter (jupytext). It
# writes its files to `xarray-example/` (or `$GEOSR_EXAMPLE_OUT`).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; drop this line in a notebook
import matplotlib.pyplot as plt
import numpy as np
import rioxarray
from matplotlib.colors import LightSource

import geosr
from geosr.raster.example import write_example
from geosr.xr import to_raster

OUT = Path(os.environ.get("GEOSR_EXAMPLE_OUT", "xarray-example"))
OUT.mkdir(exist_ok=True)

# %% [markdown]
# ## The embedded example scene
# A generated 2 m DSM (32 x 32 px, EPSG:32633) and a 0.5 m RGB orthophoto, the inputs of
# `geosr dem-sr --example`, plus the true 0.5 m surface to score against.

# %%
paths = write_example(tempfile.mkdtemp(prefix="geosr-xr-"), size=32, scale=4)
lr = rioxarray.open_rasterio(paths["lr"], masked=True, chunks={"x": 16, "y": 16})
guide = rioxarray.open_rasterio(paths["guide"], chunks={"x": 64, "y": 64})
reference = rioxarray.open_rasterio(paths["reference"], masked=True).squeeze("band")
print(lr.rio.crs, lr.rio.resolution(), "->", guide.rio.resolution())

# %% [markdown]
# ## Super-resolve
# Dask-backed inputs give a lazy result: the call only builds the tile graph (statistics,
# tiles, blended output blocks); nothing is read or computed until `.compute()`,
# `.plot()` or `.rio.to_raster()`.

# %%
hr = geosr.super_resolve_xr(lr, guide, 4, method="guided-filter")
print(type(hr.data).__name__, hr.shape, "chunks:", hr.chunks)

# %% [markdown]
# Write the lazy result with `geosr.xr.to_raster`: it runs the tiles and writes the GeoTIFF
# block by block, so memory stays bounded however big the scene (`hr.rio.to_raster(path)`
# alone would compute the whole array first). GDAL creation options go through.

# %%
to_raster(hr, OUT / "example-dsm-0p5m.tif", compress="DEFLATE")  # what `geosr sr` writes
hr = hr.compute()  # small enough to hold: the arrays for the plots below

# %% [markdown]
# MMSR (the learned method) takes the same call; a few iterations keep this quick (the
# paper uses 1000; `seed` makes CPU runs repeatable).

# %%
hr_mmsr = geosr.super_resolve_xr(lr, guide, 4, method="mmsr", preset="dem", iterations=30,
                                 seed=0).compute()

# %% [markdown]
# ## Score against the true surface

# %%
bicubic = geosr.super_resolve_xr(lr, guide, 4, method="bicubic").compute()


def rmse(a) -> float:
    d = a.squeeze("band").values - reference.values
    return float(np.sqrt(np.nanmean(d**2)))


for name, a in (("bicubic", bicubic), ("guided-filter", hr), ("mmsr (30 steps)", hr_mmsr)):
    print(f"{name:16s} RMSE {rmse(a):.3f} m")

print({k: v for k, v in hr.attrs.items() if k.startswith("GEOSR_")})

# %% [markdown]
# ## Hillshades

# %%
ls = LightSource(azdeg=315, altdeg=45)
panels = [
    ("LR 2 m (input)", lr.squeeze("band").values, 2.0),
    ("bicubic 0.5 m", bicubic.squeeze("band").values, 0.5),
    ("guided filter 0.5 m", hr.squeeze("band").values, 0.5),
    ("mmsr, 30 steps, 0.5 m", hr_mmsr.squeeze("band").values, 0.5),
    ("true surface 0.5 m", reference.values, 0.5),
]
fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3))
for ax, (title, z, res) in zip(axes, panels, strict=True):
    ax.imshow(ls.hillshade(np.nan_to_num(z, nan=float(np.nanmean(z))), dx=res, dy=res),
              cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_axis_off()
fig.tight_layout()
png = OUT / "xarray-example-hillshade.png"
fig.savefig(png, dpi=90)
print("wrote", png)
