"""The library's configuration error, shared by the model, the losses and the localization."""


class ConfigError(ValueError):
    """A model, loss or localization setting that cannot work; the message names the key and the problem."""
