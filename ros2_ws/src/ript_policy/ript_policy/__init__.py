"""VLA policies for RIPT post-training: the Policy contract, action heads, export."""
