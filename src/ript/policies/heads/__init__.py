"""Action heads: regression (OpenVLA-OFT-like) and tokenized (QueST-like)."""
