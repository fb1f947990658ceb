"""PyTorch engine of the ConvNeXt V2 workbench: models, FCMAE, recipes, checkpoints and the job runner."""
