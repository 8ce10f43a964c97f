"""Deep energy-based models on discrete and mixed data: PCD training, AIS evaluation, joint
models."""

from .ais import AISResult, AnnealedEnergy, annealed_importance_sampling, temperatures
from .data import Dataset, load_dataset, load_digits
from .modelfile import ModelFile, load_model_file, save_model_file
from .networks import (
                       DeepEnergy,
                       EnergySpec,
                       IndependentSites,
                       MLPNet,
                       ResNetNet,
                       build_energy,
                       make_trainable,
)
from .trainer import PCDTrainer, TrainConfig, UpdateStats, make_sampler

__all__ = ["AISResult", "AnnealedEnergy", "Dataset", "DeepEnergy", "EnergySpec",
           "IndependentSites", "MLPNet", "ModelFile", "PCDTrainer", "ResNetNet", "TrainConfig",
           "UpdateStats", "annealed_importance_sampling", "build_energy", "load_dataset",
           "load_digits", "load_model_file", "make_sampler", "make_trainable",
           "save_model_file", "temperatures"]
