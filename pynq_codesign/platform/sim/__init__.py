"""The simulated board: the bit-exact emulator and a timing model of its own."""
