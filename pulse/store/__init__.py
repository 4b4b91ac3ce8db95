"""Stage 3: MongoDB. schema.py owns the layout; statements are pure; writes and reads do I/O."""
