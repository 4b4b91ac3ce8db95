"""The consumer pipeline: poll a batch, apply it (named steps), drain until done, replay."""
