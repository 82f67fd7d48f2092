"""activepam: active sampling of passive acoustic monitoring (PAM) audio."""

__version__ = "0.1.0"
