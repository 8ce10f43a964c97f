"""Fitting Potts models: pseudo-likelihood (plm) and, later, PCD by Gibbs or GWG."""
