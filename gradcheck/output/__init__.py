"""Renderers of a report dict that need more than the terminal: the self-contained HTML page and its SVG."""
