"""The corpus: download and verify its files, tokenize them, batch a stream for truncated BPTT."""
