"""Parts catalog: parts, immutable revisions, content-addressed model files. Knows nothing of HTTP or arq."""
