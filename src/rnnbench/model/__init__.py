"""The model and its parts: the recurrent LM, losses, precision, parameter accounting."""
