"""The sampling engine: energy models over discrete states, samplers (Gibbs, GWG, Metropolis) and a chain driver."""
