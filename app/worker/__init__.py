"""The worker: polls unfinished jobs and stores their images."""
