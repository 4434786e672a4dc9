"""detx's TFX components and the plain modules they call (data, modeling, ...)."""
