"""Renderings of a Report (terminal table, Markdown, JUnit XML, JSON), report files, and CI annotations."""
