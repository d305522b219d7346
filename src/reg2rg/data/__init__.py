"""Study records, readers, validation, preprocessing, the preprocessing cache and synthetic phantoms."""
