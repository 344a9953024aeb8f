"""Training: the one planner training driver (AdamW, warm-up/cosine, exact resume, DDP), anchors, validation metrics."""
