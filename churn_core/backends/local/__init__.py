"""The local backend: a folder for S3, detached processes for jobs, local HTTP servers for endpoints."""
