"""One run: a spec -> data, model, LightningModule and StabilityMonitor in a real Lightning
Trainer -> its record."""
