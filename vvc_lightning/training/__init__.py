"""Training: the LightningModule, its losses, the stage schedule, the test step and checkpoint I/O."""
