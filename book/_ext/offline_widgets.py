"""Sphinx extension: the chapters' Jupyter widgets are drawn from their saved state with no network.

myst-nb loads the widget manager (@jupyter-widgets/html-manager) from a CDN by default. This copies
the npm package's standalone bundle, `embed.js` (the standard controls, no RequireJS), and the icon
fonts it loads into the site, and points myst-nb at that copy. A progress bar is drawn as it was
when its cell finished (600/600), since the notebook saves the widgets' final state.
"""

from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util.fileutil import copy_asset_file

MANAGER = Path(__file__).resolve().parents[2] / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist"
SITE_FOLDER = "jupyter-widgets"  # in the site's _static
FONTS = ("*.woff2", "*.woff", "*.ttf", "*.eot", "*.svg")  # Font Awesome, which embed.js's CSS loads beside it


def use_local_widget_manager(app, config):
    """Point myst-nb at the site's copy of the widget manager; none found is an error saying the fix (chapter "Play")."""
    if not (MANAGER / "embed.js").is_file():
        raise ExtensionError(f"{MANAGER / 'embed.js'} is missing: run `npm ci` in the repository (package.json pins "
                             "@jupyter-widgets/html-manager), then build again")
    config.nb_ipywidgets_js = {f"{SITE_FOLDER}/embed.js": {}}


def copy_widget_manager(app, exception):
    """Copy embed.js and its fonts into the built site's _static, after a successful HTML build (chapter "Play")."""
    if exception is None and app.builder.format == "html":
        folder = Path(app.outdir) / "_static" / SITE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for path in [MANAGER / "embed.js", *(font for pattern in FONTS for font in MANAGER.glob(pattern))]:
            copy_asset_file(str(path), str(folder))


def setup(app):
    """Register the extension with Sphinx (chapter "Play")."""
    app.connect("config-inited", use_local_widget_manager)
    app.connect("build-finished", copy_widget_manager)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
