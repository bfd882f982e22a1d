"""The wizard's screens, one module per step, plus the live dashboard and the result screen."""
