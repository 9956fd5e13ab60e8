"""The npm files the page imports, served under ``/vendor/`` from talkgate's own origin.

Read by ``web/pages.py`` (to serve them) and by ``setup.py`` (to copy them into the wheel), so this
module imports nothing: the build runs before talkgate's dependencies are installed.
"""

# URL name under /vendor/ → the file in node_modules (npm ci from package-lock.json).
VENDOR_FILES = {
    "socket.io-client.esm.min.js": "socket.io-client/dist/socket.io.esm.min.js",
    "livekit-client.esm.mjs": "livekit-client/dist/livekit-client.esm.mjs",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",  # /docs
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}

# The npm packages those files come from; the wheel carries each one's licence beside them.
VENDOR_PACKAGES = ("socket.io-client", "livekit-client", "swagger-ui-dist")

# Where the wheel puts them, relative to the talkgate package.
PACKAGED_DIR = "static/vendor"
