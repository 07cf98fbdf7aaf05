"""skewgate: measure and correct browser clock skew in OpenTelemetry traces."""

__version__ = "0.1.0"
