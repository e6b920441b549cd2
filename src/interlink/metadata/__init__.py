"""Object and field definitions, their loaders and describe."""
