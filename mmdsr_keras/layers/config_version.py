"""The `config_version` key of layer configs whose format has changed."""

CONFIG_VERSION_KEY = "config_version"
# What a config written before the key existed counts as.
UNVERSIONED = 1


def pop_config_version(layer_class, config, current):
    """Removes `config_version` from `config` and returns it, refusing unknown versions.

    A config without the key was written before versioning and counts as
    version 1. A version above `current` comes from a newer mmdsr_keras,
    whose meaning this one cannot know, so it raises instead of guessing.

    Args:
        layer_class: name of the layer, for the message.
        config: the config dict; modified in place.
        current: the newest version this code reads.

    Returns:
        The config's version, an int in [1, current].

    Example:
    >>> config = {"units": 3, "config_version": 2}
    >>> pop_config_version("Dense", config, current=2), config
    (2, {'units': 3})
    >>> pop_config_version("Dense", {"units": 3}, current=2)
    1
    """
    version = config.pop(CONFIG_VERSION_KEY, UNVERSIONED)
    if isinstance(version, bool) or not isinstance(version, int) or not (
            UNVERSIONED <= version <= current):
        raise ValueError(
            f"{layer_class}: unsupported '{CONFIG_VERSION_KEY}': {version!r} in the config of "
            f"layer {config.get('name')!r}; this mmdsr_keras reads versions {UNVERSIONED} to "
            f"{current}. Load the model with the (newer) mmdsr_keras release that saved it."
        )
    return version
