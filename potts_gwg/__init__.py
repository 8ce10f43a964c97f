"""potts-gwg: protein Potts models fitted by pseudo-likelihood or Gibbs-With-Gradients PCD."""

__version__ = "0.1.0"
