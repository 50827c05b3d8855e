"""Putting the parts together: the platform handle, first-start bootstrap, and `mutls up`."""
