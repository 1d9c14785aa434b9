"""Batch manifests name inputs by any path GDAL opens."""

from __future__ import annotations

from pathlib import Path

from geosr.batch import read_manifest


def test_read_manifest__gdal_paths_kept_as_given(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "lr,guide,output\n"
        "https://example.com/dsm.tif,/vsizip/scene.zip/rgb.tif,a.tif\n"
        "s3://bucket/dsm.tif,rgb.tif,b.tif\n")
    a, b = read_manifest(tmp_path / "m.csv")
    assert (a.lr, a.guide) == ("https://example.com/dsm.tif", "/vsizip/scene.zip/rgb.tif")
    assert (b.lr, b.guide) == ("s3://bucket/dsm.tif", str(tmp_path / "rgb.tif"))
