"""The model catalog: shipped data (models.yaml) merged with the operator's overrides."""
