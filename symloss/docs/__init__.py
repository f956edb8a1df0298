"""docs: derived properties of each loss (``docs.properties``) and the rendered catalog (``docs.render``)."""
