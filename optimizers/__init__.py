"""Optimizers behind one ask/tell interface (see ``optimizers.base``)."""
