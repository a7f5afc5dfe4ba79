"""The hot path: choose a channel, hold credits, call the adapter, stream back, meter, settle."""
