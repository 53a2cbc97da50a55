"""Choosing `timesteps`: statistics (ACF/PACF) and grid search."""
