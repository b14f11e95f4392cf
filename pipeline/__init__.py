"""Sequence classification of noisy squares: the library behind the DVC stages."""
