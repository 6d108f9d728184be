"""Training: the LightningModule, its losses, the stage schedule, the Lightning test step and checkpoint
I/O."""
