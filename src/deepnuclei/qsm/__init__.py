"""Quantitative susceptibility mapping: forward model, brain mask, unwrapping, background removal, inversion."""
