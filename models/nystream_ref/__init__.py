"""PyTorch reference of the Nystream continual Nyström transformer (see models/README.md)."""
from .model import Config, NystreamModel, init_weights, random_model  # noqa: F401
