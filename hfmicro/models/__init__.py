"""The model families. Each lives in one folder: configuration_<name>.py + modeling_<name>.py."""
