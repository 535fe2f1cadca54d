"""Thin adapters: model readers and fast kernels; lrp_core finds them through its registry."""
