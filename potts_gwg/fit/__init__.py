"""Fitting Potts models: pseudo-likelihood (plm) and maximum likelihood by PCD with Gibbs or
GWG chains."""
