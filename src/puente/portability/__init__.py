"""Moving a workspace between installations: `puente export` writes a portable archive
(a zip of JSON-lines files, one per kind, and the media files), `puente import` loads it
into a new or empty workspace elsewhere, with new ids. docs/export.md describes both."""
