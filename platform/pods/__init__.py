"""The pods platform: its data, its job handlers and its clients of the outside world."""
