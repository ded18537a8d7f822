"""What is scored: two tasks, and the metrics of each. No torch here, so that promote, which
only reads the scores, starts without it."""

# Clean input (reconstruction) and noisy input (denoising); the target is always the clean image.
TASKS = ("reconstruction", "denoising")
METRICS = ("mse", "psnr", "ssim", "bce")  # what metrics.image_metrics gives for each task
