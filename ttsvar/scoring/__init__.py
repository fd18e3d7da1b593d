"""Reward models and feature extractors: the verifiers that steer the search."""
