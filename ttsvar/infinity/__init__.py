"""Infinity: transformer, BSQ VAE, text encoder, scale grids and checkpoint loading."""
