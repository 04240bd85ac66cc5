"""The report's figures as PNG files, through kaleido and a Chrome or Chromium."""

from __future__ import annotations

from pathlib import Path

import plotly.io as pio

from search.results.figures import Figure, slug


def png_obstacle() -> str | None:
    """Why figures cannot be written as PNG here, or None: kaleido drives a Chrome or Chromium."""
    try:
        import kaleido  # noqa: F401
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return "PNG export needs the kaleido package (pip install kaleido) and a Chrome or Chromium"
    if Chromium.find_browser(skip_local=False) is None:
        return (
            "PNG export needs a Chrome or Chromium, and none was found (install chromium, or run "
            "`plotly_get_chrome`, or set BROWSER_PATH)"
        )
    return None


def write_pngs(figures: tuple[Figure, ...], folder: Path) -> list[Path] | None:
    """Write each figure as FOLDER/NN-KEY.png; None, writing nothing, if png_obstacle() objects."""
    if png_obstacle() is not None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index:02d}-{slug(figure.key)}.png" for index, figure in enumerate(figures)]
    # One call renders them all in one browser session;
    # a browser per figure would take seconds each.
    pio.write_images([figure.figure for figure in figures], paths, width=1100, height=600)
    return paths
