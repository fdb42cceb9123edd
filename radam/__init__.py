"""RAdam (Liu et al. 2019), its warmup schedules, and the variance theory behind it."""
