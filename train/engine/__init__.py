"""Training machinery: runtime (device, AMP, DDP), loops, checkpoints, logging, seeding, data glue."""
