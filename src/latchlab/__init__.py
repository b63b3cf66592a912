"""latchlab."""
