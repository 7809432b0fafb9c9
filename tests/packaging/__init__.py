"""What is published, tried as a new user gets it: distributions, and README replayed."""
