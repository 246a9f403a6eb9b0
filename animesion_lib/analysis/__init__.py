"""Analyses of trained models: loss-landscape slices (Li et al. 2018), grid runs of experiments."""
