"""The browser the UI tests drive (headless Chromium, through Playwright)."""

from __future__ import annotations

import shutil

# Debian's package; the stack's install step puts it there (deployments/local/stack.sh).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UI_TIMEOUT_MS = 15_000
