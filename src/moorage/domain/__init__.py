"""Pure values and rules shared by every layer; imports nothing else of moorage."""
