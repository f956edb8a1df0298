"""The jax backend (jax.numpy + custom_jvp), listed in ``symloss.backends``' registry;
importing it imports no framework."""
