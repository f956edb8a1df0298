"""The jax backend (jax.numpy + custom_jvp); importing it imports no framework."""
from .. import register

# also listed in the registry's table; registering here keeps it available either way
register("jax", "symloss.backends.jax.render", "render_spec", "jax", "symloss.backends.jax.primitives")
