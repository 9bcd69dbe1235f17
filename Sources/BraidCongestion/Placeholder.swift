// Placeholder: filled by its module's owner.
