"""The cluster runtime: JobManager, TaskManagers and their slot processes."""
