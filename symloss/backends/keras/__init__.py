"""The keras backend (keras.ops + ops.custom_gradient), listed in ``symloss.backends``' registry;
importing it imports no framework."""
